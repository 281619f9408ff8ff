//! `--net bridge`, the executor (DESIGN.md section 7). In three steps, each
//! with its own process and privilege:
//!
//! 1. [`prepare`], in the supervisor before the clone: the address and host
//!    port leases (files under /run/microbox, nothing else on the host yet).
//! 2. [`Prepared::attach`], in the supervisor after the clone and before Go:
//!    the bridge (made once, kept), forwarding, the shared nf_tables table
//!    (made once, kept), the sandbox's veth pair with its peer born in the
//!    sandbox's network namespace, port isolation, the sandbox's own tables.
//! 3. [`configure_inside`], in the child after Go, inside its namespace:
//!    address, link up, default route.
//!
//! [`Attached::detach`] removes what step 2 made for this sandbox; the leases
//! go when their files are dropped. After a SIGKILL of microbox the kernel
//! removes the veth pair with the namespace, the leases are free with their
//! holder gone, and [`forget`] (from the collector) removes the tables.

use std::net::Ipv4Addr;
use std::path::Path;

use super::addr::{host_veth_name, sandbox_mac, Subnet};
use super::addr::{Allow, Publish};
use super::netlink::{attrs, Message, NLM_F_ACK, NLM_F_DUMP};
use super::nft;
use super::nlsock::{Answer, Bus, Failure, Netlink};
use super::rtnl;
use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::state::{run_dir, DirHold, Lease};

/// The sandbox's side of the network, computed before the clone and copied
/// into the child with its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inside {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// The interface name the sandbox sees.
const INSIDE_NAME: &str = "eth0";

/// Step 1: leases. A full subnet or a host port in use is an error here,
/// before anything else exists.
pub fn prepare(spec: &Spec, id: &str) -> Result<Prepared> {
    let run = Path::new(run_dir());
    let subnet = spec.subnet;
    let netns = netns_id()?;
    let dir = lease_dir(netns, &spec.bridge);
    // Held for the sandbox's lifetime: `--net-cleanup` removes nothing under it.
    let users = DirHold::shared(run, &dir)?;
    // Round-robin from the address leased last: a freed address comes back
    // only after all the others, by when the kernel has long removed the veth
    // of its last holder (which it does after the sandbox, not with it).
    let last = crate::state::last_leased(run, &dir).and_then(|l| l.parse().ok());
    let names = subnet.hosts_after(last).map(|ip| ip.to_string());
    let lease = Lease::first_free(run, &dir, names)?.ok_or_else(|| {
        Error::failed(
            "lease an address",
            format!(
                "all {} addresses are leased by running sandboxes",
                subnet.hosts().count()
            ),
        )
        .on(format_args!("in {subnet} of bridge {}", spec.bridge))
        .hint("use a wider --subnet, or another --bridge with its own --subnet")
    })?;
    crate::state::remember_leased(run, &dir, lease.name());
    let stale_flows = lease.inherited();
    let addr: Ipv4Addr = lease
        .name()
        .parse()
        .map_err(|_| Error::runtime(format!("internal error: lease {:?}", lease.name())))?;
    let mut leases = vec![lease];
    for publish in &spec.publish {
        let name = format!("{netns}-{}-{}", publish.proto.name(), publish.host_port);
        let port = Lease::take(run, "ports", &name)?.ok_or_else(|| {
            Error::failed("publish", "another sandbox publishes it").on(format_args!(
                "host port {}/{}",
                publish.host_port,
                publish.proto.name()
            ))
        })?;
        leases.push(port);
    }
    Ok(Prepared {
        id: id.to_string(),
        bridge: spec.bridge.clone(),
        subnet,
        inside: Inside {
            addr,
            prefix: subnet.prefix,
            gateway: subnet.gateway(),
        },
        publish: spec.publish.clone(),
        allow: spec.net_allow.clone(),
        dns: dns_v4(spec),
        stale_flows,
        leases,
        _users: Some(users),
    })
}

/// The IPv4 `--dns` servers (or the defaults), which an allow-list lets through
/// on port 53; an IPv6 server is unreachable in bridge mode anyway.
fn dns_v4(spec: &Spec) -> Vec<Ipv4Addr> {
    let given: Vec<std::net::IpAddr> = if spec.dns.is_empty() {
        crate::spec::DEFAULT_DNS
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    } else {
        spec.dns.clone()
    };
    given
        .into_iter()
        .filter_map(|ip| match ip {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .collect()
}

/// The network namespace microbox runs in, by inode: bridges and host ports
/// are per namespace, so their leases are too.
fn netns_id() -> Result<u64> {
    const PATH: &str = "/proc/self/ns/net";
    rustix::fs::stat(PATH)
        .map(|st| st.st_ino)
        .map_err(|e| Error::os("stat", e).on(PATH))
}

/// `ipam/<netns>-<bridge>`: the address leases of one bridge.
fn lease_dir(netns: u64, bridge: &str) -> String {
    format!("ipam/{netns}-{bridge}")
}

/// The leases of one sandbox; dropping it frees them.
#[derive(Debug)]
pub struct Prepared {
    id: String,
    bridge: String,
    subnet: Subnet,
    pub inside: Inside,
    publish: Vec<Publish>,
    allow: Vec<Allow>,
    dns: Vec<Ipv4Addr>,
    /// The address's last holder was killed before it could forget its flows
    /// (see `forget_flows`), so attach does.
    stale_flows: bool,
    /// Held: dropping them frees the address (the first) and ports.
    leases: Vec<Lease>,
    /// The shared hold on the bridge's lease directory (None in unit tests).
    _users: Option<DirHold>,
}

/// What step 2 made for one sandbox.
#[derive(Debug)]
pub struct Attached {
    prepared: Prepared,
    veth: String,
    /// The sandbox's nf_tables tables, once made.
    tables: Vec<(nft::Family, String)>,
}

impl Prepared {
    /// Frees the leases but leaves the address's lease file, so that the
    /// next holder deletes the flows this run could not.
    fn abandon_address(mut self) {
        if !self.leases.is_empty() {
            self.leases.remove(0).abandon();
        }
    }

    /// Step 2, for the child `pid` waiting for Go.
    pub fn attach(self, pid: i32) -> Result<Attached> {
        let mut nl = Netlink::open(Bus::Route).map_err(|e| e.into_error("open", "rtnetlink"))?;
        let bridge = ensure_bridge(&mut nl, &self.bridge, self.subnet)?;
        enable_forwarding()?;
        if self.stale_flows {
            if let Err(err) = forget_flows(self.inside.addr, false) {
                self.abandon_address();
                return Err(err);
            }
        }
        let veth = host_veth_name(self.inside.addr);
        let pid = u32::try_from(pid).map_err(|_| Error::runtime("internal error: pid"))?;
        let mac = sandbox_mac(self.inside.addr);
        let create = || {
            vec![
                rtnl::new_veth_pair(&veth, bridge, INSIDE_NAME, mac, pid),
                rtnl::isolate_port(&veth),
            ]
        };
        let failed = |e: Failure| e.into_error("create", format_args!("veth pair {veth}"));
        let mut answers = nl.answers(create()).map_err(failed)?;
        // EEXIST: the veth of this address's last holder, which ended (we hold
        // its lease) but whose namespace the kernel has not yet torn down.
        if answers[0]
            .refused
            .as_ref()
            .is_some_and(|r| r.errno == libc::EEXIST)
        {
            delete_link(&veth)?;
            answers = nl.answers(create()).map_err(failed)?;
        }
        first_refusal(answers, &[]).map_err(|r| {
            r.into_error(
                "create",
                format_args!("veth pair {veth} on {}", self.bridge),
            )
        })?;
        // From here on, detach() undoes what exists.
        let mut attached = Attached {
            prepared: self,
            veth,
            tables: Vec::new(),
        };
        attached.install_rules(mac)?;
        Ok(attached)
    }
}

impl Attached {
    /// The rules, made only where missing: the bridge's shared table (by
    /// whoever finds it missing; two makers at once are fine, the second's
    /// batch is refused with EEXIST) and the port table of this address (kept
    /// across sandboxes, see `nft::port_table`), then the sandbox's own table
    /// if it has one. Asking first matters: a refused batch costs the kernel's
    /// abort path, several ms.
    fn install_rules(&mut self, mac: [u8; 6]) -> Result<()> {
        let p = &self.prepared;
        let mut nl =
            Netlink::open(Bus::Netfilter).map_err(|e| e.into_error("open", "nfnetlink"))?;
        let shared = nft::shared_table(&p.bridge, p.subnet);
        let port = nft::port_table(&p.bridge, &self.veth, p.inside.addr, mac);
        let table_error = |e: Failure, name: &str| {
            e.into_error("create", format_args!("nf_tables table {name}"))
                .hint("does the kernel have nf_tables with nat, reject, fib and netdev?")
        };
        let asked = nl
            .answers(vec![
                nft::get_table(shared.family, &shared.name),
                nft::get_chain(port.family, &port.name, "ingress"),
            ])
            .map_err(|e| table_error(e, &shared.name))?;
        let missing: Vec<bool> = asked
            .iter()
            .map(|a| a.refused.as_ref().is_some_and(|r| r.errno == libc::ENOENT))
            .collect();
        if missing[0] {
            match nl.exchange(nft::batch(nft::create(&shared, true))) {
                Ok(()) => {}
                Err(Failure::Refused(r)) if r.errno == libc::EEXIST => {}
                Err(e) => return Err(table_error(e, &shared.name)),
            }
        }
        let own = nft::sandbox_table(&nft::SandboxNet {
            id: &p.id,
            addr: p.inside.addr,
            publish: &p.publish,
            allow: &p.allow,
            dns: &p.dns,
        });
        let mut msgs = Vec::new();
        if missing[1] {
            msgs.extend(nft::create(&port, false));
        }
        if let Some(table) = &own {
            msgs.extend(nft::create(table, false));
        }
        if !msgs.is_empty() {
            nl.exchange(nft::batch(msgs))
                .map_err(|e| table_error(e, &port.name))?;
        }
        self.tables = own.into_iter().map(|t| (t.family, t.name)).collect();
        Ok(())
    }

    /// Removes this sandbox's tables and flows and frees its leases. Not the
    /// veth: the kernel removes it with the sandbox's namespace, soon after and
    /// off the caller's clock (deleting it here costs some 24 ms of waiting for
    /// RCU grace periods, with the namespace still alive); the address it is
    /// named after is the last to be leased again. The flows go before the
    /// address is free, and after the tables (no new flow is NAT'd to it);
    /// TCP flows already closing stay to finish (see `conntrack.rs`).
    pub fn detach(self) -> Result<()> {
        let tables = delete_tables(&self.tables);
        let flows = if veth_carried_nothing(&self.veth) {
            Ok(())
        } else {
            forget_flows(self.prepared.inside.addr, true)
        };
        match flows {
            Ok(()) => drop(self.prepared),
            Err(err) => {
                self.prepared.abandon_address();
                return Err(err);
            }
        }
        tables
    }
}

/// Whether not one packet went through the sandbox's veth, either way: then
/// no conntrack entry names its address (an entry is confirmed as its first
/// packet leaves for the veth, or for the ARP request that precedes it), and
/// detach skips [`forget_flows`], which costs two walks of the kernel's whole
/// conntrack hash (some 3.5 ms each with 262144 buckets). A veth already gone
/// with its namespace, or unreadable counters, count as used.
fn veth_carried_nothing(veth: &str) -> bool {
    let Ok(mut nl) = Netlink::open(Bus::Route) else {
        return false;
    };
    let Ok(mut answers) = nl.answers(vec![with_ack(rtnl::get_link(veth))]) else {
        return false;
    };
    let answer = answers.pop().unwrap_or_default();
    answer.refused.is_none()
        && answer
            .data
            .first()
            .and_then(|link| rtnl::link_packets(link))
            == Some((0, 0))
}

/// Deletes the conntrack entries of `addr` (see `conntrack.rs`: its flows
/// would otherwise reach the next sandbox leased the address). Two dumps the
/// kernel filters: it sends only the entries found, but walks its whole hash
/// table for each.
pub(super) fn forget_flows(addr: Ipv4Addr, keep_closing: bool) -> Result<()> {
    use super::conntrack::{delete, dump_by_source, flows_from, Direction};
    let object = || format!("conntrack entries of {addr}");
    let failed = |e: Failure| {
        e.into_error("list", object())
            .hint("does the kernel have nf_conntrack_netlink?")
    };
    let mut nl = Netlink::open(Bus::Netfilter).map_err(failed)?;
    let mut flows = Vec::new();
    for direction in [Direction::Original, Direction::Reply] {
        let entries = nl.dump(dump_by_source(addr, direction)).map_err(failed)?;
        let found = flows_from(&entries, addr, keep_closing)
            .map_err(|m| Error::failed("list", m.to_string()).on(object()))?;
        for flow in found {
            // A flow from the address to itself is in both dumps.
            if !flows.contains(&flow) {
                flows.push(flow);
            }
        }
    }
    if flows.is_empty() {
        return Ok(());
    }
    let answers = nl
        .answers(flows.iter().map(delete).collect())
        .map_err(|e| e.into_error("delete", object()))?;
    // ENOENT: expired between the dump and the delete.
    first_refusal(answers, &[libc::ENOENT]).map_err(|r| r.into_error("delete", object()))
}

/// Deletes link `name`; Ok when there is none.
fn delete_link(name: &str) -> Result<()> {
    let mut nl = Netlink::open(Bus::Route).map_err(|e| e.into_error("open", "rtnetlink"))?;
    let answers = nl
        .answers(vec![rtnl::delete_link(name)])
        .map_err(|e| e.into_error("delete", format_args!("link {name}")))?;
    first_refusal(answers, &[libc::ENODEV])
        .map_err(|r| r.into_error("delete", format_args!("link {name}")))
}

/// What the collector removes for a dead sandbox `id`: its tables (its veth
/// went with its namespace). Ok when there is nothing.
pub fn forget(id: &str) -> Result<()> {
    let name = nft::sandbox_table_name(id);
    let tables: Vec<_> = sandbox_tables_present()?
        .into_iter()
        .filter(|(_, n)| *n == name)
        .collect();
    delete_tables(&tables)
}

/// Every `mbx-<id>` table in this namespace, by family.
fn sandbox_tables_present() -> Result<Vec<(nft::Family, String)>> {
    tables_present(nft::Family::Inet, "mbx-")
}

/// The tables of `family` whose names start with `prefix`.
fn tables_present(family: nft::Family, prefix: &str) -> Result<Vec<(nft::Family, String)>> {
    let mut nl = Netlink::open(Bus::Netfilter).map_err(|e| e.into_error("open", "nfnetlink"))?;
    let entries = nl
        .dump(nft::list_tables(family))
        .map_err(|e| e.into_error("list", "nf_tables tables"))?;
    let names = nft::table_names(&entries)
        .map_err(|m| Error::failed("list", m.to_string()).on("nf_tables tables"))?;
    Ok(names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(|n| (family, n))
        .collect())
}

/// Deletes the `mbx-<id>` tables of sandboxes whose run is dead (its lock can
/// be taken): what a crash between the collector's steps may leave.
fn collect_dead_tables() -> Result<()> {
    let mut by_id: Vec<(String, Vec<(nft::Family, String)>)> = Vec::new();
    for (family, name) in sandbox_tables_present()? {
        // Only what a sandbox id can be: the id becomes a lock path.
        let Some(id) = name
            .strip_prefix("mbx-")
            .filter(|id| crate::cgroup::is_valid_id(id))
        else {
            continue;
        };
        let id = id.to_string();
        match by_id.iter_mut().find(|(i, _)| *i == id) {
            Some((_, tables)) => tables.push((family, name)),
            None => by_id.push((id, vec![(family, name)])),
        }
    }
    for (id, tables) in by_id {
        // A lock that can be taken belongs to nobody alive.
        if let Ok(lock) = crate::state::SandboxLock::acquire(Path::new(run_dir()), &id) {
            let result = delete_tables(&tables);
            lock.release(true);
            result?;
        }
    }
    Ok(())
}

/// Deletes `tables` in one batch. A batch fails as a whole, so when one of
/// them is gone already (ENOENT) the rest are deleted one by one.
fn delete_tables(tables: &[(nft::Family, String)]) -> Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let mut nl = Netlink::open(Bus::Netfilter).map_err(|e| e.into_error("open", "nfnetlink"))?;
    let all = tables.iter().map(|(f, n)| nft::delete(*f, n)).collect();
    let error =
        |e: Failure, name: &str| e.into_error("delete", format_args!("nf_tables table {name}"));
    match nl.exchange(nft::batch(all)) {
        Ok(()) => return Ok(()),
        Err(Failure::Refused(r)) if r.errno == libc::ENOENT => {}
        Err(e) => return Err(error(e, &tables[0].1)),
    }
    for (family, name) in tables {
        match nl.exchange(nft::batch(vec![nft::delete(*family, name)])) {
            Ok(()) => {}
            Err(Failure::Refused(r)) if r.errno == libc::ENOENT => {}
            Err(e) => return Err(error(e, name)),
        }
    }
    Ok(())
}

/// `microbox --net-cleanup`: removes bridge `name` and what bridge mode made
/// for it on the host, refusing while a live sandbox holds an address on it.
/// Stale lease files (of dead runs) go too. Nothing there is fine.
pub fn cleanup(name: &str) -> Result<()> {
    // Refuses a link of that name microbox did not make, before anything goes.
    {
        let mut nl = Netlink::open(Bus::Route).map_err(|e| e.into_error("open", "rtnetlink"))?;
        bridge_index(&mut nl, name)?;
    }
    let leases = lease_dir(netns_id()?, name);
    let dir = Path::new(run_dir()).join(&leases);
    // Every sandbox on the bridge holds its lease directory shared from
    // before it leases to after it ends; held exclusive, none is starting
    // or running, and none starts until this ends.
    let Some(_alone) = DirHold::exclusive(Path::new(run_dir()), &leases)? else {
        return Err(Error::failed("remove", "running sandbox(es) use it")
            .on(format_args!("bridge {name}"))
            .hint("stop them first"));
    };
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(addr) = file.to_str().and_then(|f| f.strip_suffix(".lock")) else {
                continue;
            };
            // A lease file now is a dead holder's: its flows go, then the file.
            if let Some(free) = Lease::take(Path::new(run_dir()), &leases, addr)? {
                if let (true, Ok(ip)) = (free.inherited(), addr.parse()) {
                    forget_flows(ip, false)?;
                }
                drop(free);
            }
        }
    }
    collect_dead_tables()?;
    // The port tables of this bridge: `<name>-` and eight hex digits.
    let ports: Vec<_> = tables_present(nft::Family::Netdev, &format!("{name}-"))?
        .into_iter()
        .filter(|(_, t)| {
            let rest = &t[name.len() + 1..];
            rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .collect();
    delete_tables(&ports)?;
    let mut nl = Netlink::open(Bus::Netfilter).map_err(|e| e.into_error("open", "nfnetlink"))?;
    match nl.exchange(nft::batch(vec![nft::delete(nft::Family::Inet, name)])) {
        Ok(()) => {}
        Err(Failure::Refused(r)) if r.errno == libc::ENOENT => {}
        Err(e) => return Err(e.into_error("delete", format_args!("nf_tables table inet {name}"))),
    }
    delete_link(name)?;
    crate::state::forget_last_leased(Path::new(run_dir()), &leases);
    match std::fs::remove_dir(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::os("remove", e).on(dir.display())),
    }
}

/// The first refusal among `answers` whose errno is not in `fine`.
fn first_refusal(
    answers: Vec<Answer>,
    fine: &[i32],
) -> std::result::Result<(), super::nlsock::Refused> {
    match answers
        .into_iter()
        .filter_map(|a| a.refused)
        .find(|r| !fine.contains(&r.errno))
    {
        Some(refused) => Err(refused),
        None => Ok(()),
    }
}

/// The bridge, up, with the subnet's gateway address, made when missing;
/// returns its index. First refuses a subnet that overlaps a route of the host
/// other than this bridge's own, and a bridge that serves another subnet:
/// then nothing is made.
fn ensure_bridge(nl: &mut Netlink, name: &str, subnet: Subnet) -> Result<u32> {
    let existing = bridge_index(nl, name)?;
    check_routes(nl, name, existing, subnet)?;
    let index = match existing {
        Some(index) => index,
        None => {
            let answers = nl
                .answers(vec![rtnl::new_bridge(name)])
                .map_err(|e| e.into_error("create", format_args!("bridge {name}")))?;
            // EEXIST: another run made it since we looked.
            first_refusal(answers, &[libc::EEXIST])
                .map_err(|r| r.into_error("create", format_args!("bridge {name}")))?;
            bridge_index(nl, name)?.ok_or_else(|| {
                Error::failed("find", "it is gone right after it was made")
                    .on(format_args!("bridge {name}"))
            })?
        }
    };
    let gateway = subnet.gateway();
    let answers = nl
        .answers(vec![
            rtnl::set_up(name),
            rtnl::new_address(index, gateway, subnet.prefix),
        ])
        .map_err(|e| e.into_error("add", format_args!("{gateway} to bridge {name}")))?;
    first_refusal(answers, &[libc::EEXIST])
        .map_err(|r| r.into_error("add", format_args!("{gateway} to bridge {name}")))?;
    Ok(index)
}

/// The index of link `name`, or None when there is none.
fn bridge_index(nl: &mut Netlink, name: &str) -> Result<Option<u32>> {
    let mut answers = nl
        .answers(vec![with_ack(rtnl::get_link(name))])
        .map_err(|e| e.into_error("look up", format_args!("link {name}")))?;
    let answer = answers.pop().unwrap_or_default();
    match answer.refused {
        Some(r) if r.errno == libc::ENODEV => Ok(None),
        Some(r) => Err(r.into_error("look up", format_args!("link {name}"))),
        None => {
            let Some(link) = answer.data.first() else {
                return Ok(None);
            };
            // Someone else's link of that name (a docker0, a wg0, a plain
            // bridge): neither joined nor, by --net-cleanup, removed.
            if rtnl::link_group(link) != Some(rtnl::BRIDGE_GROUP) {
                return Err(Error::failed("use", "microbox did not make it")
                    .on(format_args!("link {name}"))
                    .hint("choose another --bridge"));
            }
            Ok(rtnl::link_index(link))
        }
    }
}

fn with_ack(msg: Message) -> Message {
    msg.with_flags(NLM_F_ACK)
}

/// One IPv4 route of the main table: destination and the interface it leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Route {
    dest: Subnet,
    oif: Option<u32>,
}

/// Refuses `subnet` when a host route overlaps it, unless the route is the
/// bridge's own for exactly this subnet; the default route overlaps
/// everything and is not counted.
fn check_routes(nl: &mut Netlink, bridge: &str, index: Option<u32>, subnet: Subnet) -> Result<()> {
    let mut header = [0u8; 12];
    header[0] = 2; // AF_INET
    let entries = nl
        .dump(Message::new(libc::RTM_GETROUTE, NLM_F_DUMP).header(&header))
        .map_err(|e| e.into_error("list", "the host's IPv4 routes"))?;
    for route in entries.iter().filter_map(|e| parse_route(e)) {
        let ours = index.is_some() && route.oif == index;
        let why = if ours && route.dest != subnet {
            format!("bridge {bridge} serves {} already", route.dest)
        } else if !ours && route.dest.overlaps(subnet) {
            format!("it overlaps the host's route to {}", route.dest)
        } else {
            continue;
        };
        return Err(Error::failed("use", why)
            .on(format_args!("subnet {subnet}"))
            .hint("choose another --subnet (and --bridge)"));
    }
    Ok(())
}

/// A main-table unicast route with a destination prefix from an RTM_NEWROUTE
/// dump entry; None for anything else (default routes included).
pub(super) fn parse_route(payload: &[u8]) -> Option<Route> {
    let header = payload.get(..12)?;
    let (dst_len, table, kind) = (header[1], header[4], header[7]);
    if dst_len == 0 || table != libc::RT_TABLE_MAIN || kind != libc::RTN_UNICAST {
        return None;
    }
    let mut dest = None;
    let mut oif = None;
    for attr in attrs(payload.get(12..)?) {
        let (kind, value) = attr.ok()?;
        match kind {
            k if k == libc::RTA_DST => {
                let b: [u8; 4] = value.try_into().ok()?;
                dest = Some(Ipv4Addr::from(b));
            }
            k if k == libc::RTA_OIF => {
                let b: [u8; 4] = value.try_into().ok()?;
                oif = Some(u32::from_ne_bytes(b));
            }
            _ => {}
        }
    }
    Some(Route {
        dest: Subnet {
            network: dest?,
            prefix: dst_len,
        },
        oif,
    })
}

/// IPv4 forwarding in the host's namespace: without it nothing leaves the
/// bridge. Written only when off, so a host that has it pays one read.
fn enable_forwarding() -> Result<()> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    let now = std::fs::read(PATH).map_err(|e| Error::os("read", e).on(PATH))?;
    if now.first() != Some(&b'1') {
        std::fs::write(PATH, b"1").map_err(|e| Error::os("write 1 to", e).on(PATH))?;
    }
    Ok(())
}

/// Step 3, in the child inside its network namespace: `eth0` gets its
/// address, goes up, and gets the default route via the bridge.
pub fn configure_inside(inside: &Inside) -> Result<()> {
    let mut nl = Netlink::open(Bus::Route).map_err(|e| e.into_error("open", "rtnetlink"))?;
    let answers = nl
        .answers(vec![
            with_ack(rtnl::get_link(INSIDE_NAME)),
            rtnl::set_up(INSIDE_NAME),
        ])
        .map_err(|e| e.into_error("configure", INSIDE_NAME))?;
    let index = answers
        .first()
        .and_then(|a| a.data.first())
        .and_then(|payload| rtnl::link_index(payload));
    first_refusal(answers, &[]).map_err(|r| r.into_error("bring up", INSIDE_NAME))?;
    let index = index.ok_or_else(|| Error::failed("find", "no such link").on(INSIDE_NAME))?;
    let answers = nl
        .answers(vec![
            rtnl::new_address(index, inside.addr, inside.prefix),
            rtnl::new_default_route(index, inside.gateway),
        ])
        .map_err(|e| e.into_error("configure", INSIDE_NAME))?;
    first_refusal(answers, &[]).map_err(|r| {
        r.into_error(
            "configure",
            format_args!(
                "{INSIDE_NAME} with {}/{} via {}",
                inside.addr, inside.prefix, inside.gateway
            ),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    fn route_entry(dst: [u8; 4], len: u8, table: u8, kind: u8, oif: u32) -> Vec<u8> {
        let mut msg = Message::new(libc::RTM_NEWROUTE, 0)
            .header(&[2, len, 0, 0, table, 4, 0, kind, 0, 0, 0, 0]);
        msg.attr(libc::RTA_DST, &dst);
        msg.attr_u32(libc::RTA_OIF, oif);
        msg.finish(1)[16..].to_vec()
    }

    #[test]
    fn routes_are_read_from_dump_entries() {
        let r = parse_route(&route_entry([192, 0, 2, 0], 24, 254, 1, 3)).unwrap();
        assert_eq!(r.dest, Subnet::parse("192.0.2.0/24").unwrap());
        assert_eq!(r.oif, Some(3));
        // Local table, broadcast type, default route: not counted.
        assert_eq!(
            parse_route(&route_entry([192, 0, 2, 0], 24, 255, 1, 3)),
            None
        );
        assert_eq!(
            parse_route(&route_entry([192, 0, 2, 0], 24, 254, 3, 3)),
            None
        );
        assert_eq!(parse_route(&route_entry([0, 0, 0, 0], 0, 254, 1, 3)), None);
        // Truncated entries are None, never a panic.
        let whole = route_entry([192, 0, 2, 0], 24, 254, 1, 3);
        for cut in 0..whole.len() {
            let _ = parse_route(&whole[..cut]);
        }
    }

    /// The requests against the real kernel, in a network namespace of the
    /// test's own (`unshare --net`: no traffic leaves it): the test executable
    /// runs itself again there. As root only; unit tests must pass without.
    #[test]
    fn bridge_and_veth_are_made_in_a_private_namespace() {
        const NAME: &str = "net::bridge::tests::bridge_and_veth_are_made_in_a_private_namespace";
        crate::in_new_netns(NAME, inside_private_namespace);
    }

    fn ip(args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nft_tables() -> String {
        let out = std::process::Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        assert!(out.status.success(), "nft list tables");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("mbx-"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn inside_private_namespace() {
        let subnet = Subnet::parse("192.0.2.0/28").unwrap();
        let mut nl = Netlink::open(Bus::Route).unwrap();
        let index = ensure_bridge(&mut nl, "mbxtest0", subnet).unwrap();
        // Idempotent: the second time finds it all there.
        assert_eq!(ensure_bridge(&mut nl, "mbxtest0", subnet).unwrap(), index);
        let link = ip(&["-d", "link", "show", "mbxtest0"]);
        assert!(link.contains("state UP") || link.contains(",UP"), "{link}");
        assert!(link.contains("bridge"), "{link}");
        assert!(ip(&["-4", "addr", "show", "mbxtest0"]).contains("192.0.2.1/28"));
        // Another subnet on the same bridge, or one overlapping its route, is refused.
        let other = Subnet::parse("192.0.2.0/24").unwrap();
        let err = ensure_bridge(&mut nl, "mbxtest1", other)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("overlaps the host's route to 192.0.2.0/28"),
            "{err}"
        );
        let err = ensure_bridge(
            &mut nl,
            "mbxtest0",
            Subnet::parse("198.51.100.0/28").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("serves 192.0.2.0/28 already"), "{err}");

        // A process in a namespace of its own stands in for the sandbox.
        let mut sandbox = std::process::Command::new("unshare")
            .args(["--net", "--", "sleep", "30"])
            .spawn()
            .unwrap();
        let pid = sandbox.id();
        let netns = format!("/proc/{pid}/ns/net");
        // unshare execs sleep once the namespace exists; wait for that.
        for _ in 0..100 {
            let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
            if std::fs::read_link(&netns).is_ok_and(|l| l != ours) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let inside = Inside {
            addr: Ipv4Addr::new(192, 0, 2, 2),
            prefix: 28,
            gateway: subnet.gateway(),
        };
        let prepared = |id: &str| Prepared {
            id: id.into(),
            bridge: "mbxtest0".into(),
            subnet,
            inside,
            publish: Vec::new(),
            allow: Vec::new(),
            dns: Vec::new(),
            stale_flows: false,
            leases: Vec::new(),
            _users: None,
        };
        let attached = prepared("0123456789abcdef")
            .attach(i32::try_from(pid).unwrap())
            .unwrap();
        let veth = ip(&["-d", "link", "show", "mbxc0000202"]);
        assert!(veth.contains("master mbxtest0"), "{veth}");
        assert!(veth.contains("isolated on"), "{veth}");
        // Configure the peer from a thread that entered the sandbox's namespace.
        let ns = std::fs::File::open(&netns).unwrap();
        std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            configure_inside(&inside).unwrap();
        })
        .join()
        .unwrap();
        let seen = |args: &[&str]| {
            let out = std::process::Command::new("nsenter")
                .arg(format!("--net={netns}"))
                .arg("ip")
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let eth0 = seen(&["addr", "show", "eth0"]);
        assert!(eth0.contains("02:6d:c0:00:02:02"), "{eth0}");
        assert!(eth0.contains("inet 192.0.2.2/28"), "{eth0}");
        assert!(eth0.contains("state UP") || eth0.contains(",UP"), "{eth0}");
        assert!(seen(&["route"]).contains("default via 192.0.2.1 dev eth0"));
        attached.detach().unwrap();
        assert_eq!(nft_tables(), "");
        // The veth stays while the namespace lives; the next holder of the
        // address replaces it.
        assert!(ip(&["link"]).contains("mbxc0000202"));
        let second = prepared("fedcba9876543210")
            .attach(i32::try_from(pid).unwrap())
            .unwrap();
        second.detach().unwrap();
        // Forgetting a sandbox with nothing left is fine.
        forget("0123456789abcdef").unwrap();
        let _ = sandbox.kill();
        let _ = sandbox.wait();
        // With the namespace gone, the kernel removes the veth.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while ip(&["link"]).contains("mbxc0000202") {
            assert!(
                std::time::Instant::now() < deadline,
                "the veth outlived its namespace"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
