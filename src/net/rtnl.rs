//! The rtnetlink requests bridge mode makes, as data: links (the bridge, a
//! veth pair whose peer is born in the sandbox's namespace, bridge-port
//! isolation, up), IPv4 addresses and the default route. Each function only
//! builds a [`Message`]; `bridge.rs` sends them.
//!
//! Layouts from `<linux/rtnetlink.h>`, `<linux/if_link.h>`, `<linux/if_addr.h>`,
//! `<linux/veth.h>`: `ifinfomsg` (16 bytes), `ifaddrmsg` (8), `rtmsg` (12).

use std::net::Ipv4Addr;

use super::netlink::{attrs, Message, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};

/// `VETH_INFO_PEER` (`<linux/veth.h>`): the peer's own ifinfomsg and attributes.
const VETH_INFO_PEER: u16 = 1;
/// `IFLA_BRPORT_ISOLATED` (`<linux/if_link.h>`): an isolated port forwards only
/// to non-isolated ones (the bridge itself), never to another isolated port.
const IFLA_BRPORT_ISOLATED: u16 = 33;
/// `IFF_UP` as the u32 of ifinfomsg's flags.
const IFF_UP: u32 = 1;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;

/// `struct ifinfomsg` with `index`, and IFF_UP set and changed when `up`.
fn ifinfo(index: u32, up: bool) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = AF_UNSPEC;
    out[4..8].copy_from_slice(&index.to_ne_bytes());
    if up {
        out[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());
        out[12..16].copy_from_slice(&IFF_UP.to_ne_bytes());
    }
    out
}

fn attr_u16(value: libc::c_ushort) -> u16 {
    value
}

/// The device group that marks a bridge microbox made (`ip -d link` shows
/// `group 1835169840`; ASCII "mbx0"): the kernel sets it as it creates the
/// link, so no other run ever sees the bridge without it. A link of the
/// bridge's name in another group is someone else's, never joined or removed.
pub const BRIDGE_GROUP: u32 = 0x6d62_7830;

/// Creates bridge `name`, up, in [`BRIDGE_GROUP`]. EEXIST when it exists
/// (then it is reused).
pub fn new_bridge(name: &str) -> Message {
    let mut msg = Message::new(libc::RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
        .header(&ifinfo(0, true));
    msg.attr_str(attr_u16(libc::IFLA_IFNAME), name);
    msg.nest(attr_u16(libc::IFLA_LINKINFO), |m| {
        // No NUL, as ip(8) writes it; the kernel takes either.
        m.attr(attr_u16(libc::IFLA_INFO_KIND), b"bridge");
    });
    msg.attr_u32(attr_u16(libc::IFLA_GROUP), BRIDGE_GROUP);
    msg
}

/// The device group in an RTM_NEWLINK answer's payload.
pub fn link_group(payload: &[u8]) -> Option<u32> {
    attrs(payload.get(16..)?)
        .map_while(std::result::Result::ok)
        .find(|(kind, _)| *kind == attr_u16(libc::IFLA_GROUP))
        .and_then(|(_, value)| value.try_into().ok().map(u32::from_ne_bytes))
}

/// The packets a link received and sent, from an RTM_NEWLINK answer's
/// IFLA_STATS64 (`struct rtnl_link_stats64` starts with rx_packets, tx_packets).
pub fn link_packets(payload: &[u8]) -> Option<(u64, u64)> {
    let (_, stats) = attrs(payload.get(16..)?)
        .map_while(std::result::Result::ok)
        .find(|(kind, _)| *kind == attr_u16(libc::IFLA_STATS64))?;
    let rx = u64::from_ne_bytes(stats.get(..8)?.try_into().ok()?);
    let tx = u64::from_ne_bytes(stats.get(8..16)?.try_into().ok()?);
    Some((rx, tx))
}

/// Sets link `name` up (the bridge, when it existed down).
pub fn set_up(name: &str) -> Message {
    let mut msg = Message::new(libc::RTM_NEWLINK, NLM_F_ACK).header(&ifinfo(0, true));
    msg.attr_str(attr_u16(libc::IFLA_IFNAME), name);
    msg
}

/// The link called `name`: a single RTM_NEWLINK answer carries its index.
pub fn get_link(name: &str) -> Message {
    let mut msg = Message::new(libc::RTM_GETLINK, 0).header(&ifinfo(0, false));
    msg.attr_str(attr_u16(libc::IFLA_IFNAME), name);
    msg
}

/// The interface index in an RTM_NEWLINK answer's payload.
pub fn link_index(payload: &[u8]) -> Option<u32> {
    let bytes = payload.get(4..8)?;
    Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// A veth pair: `host` (up, a port of the bridge with index `master`) and its
/// peer `peer` with MAC `peer_mac`, created directly inside the network
/// namespace of process `pid`, so the sandbox's end never exists on the host.
pub fn new_veth_pair(host: &str, master: u32, peer: &str, peer_mac: [u8; 6], pid: u32) -> Message {
    let mut msg = Message::new(libc::RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
        .header(&ifinfo(0, true));
    msg.attr_str(attr_u16(libc::IFLA_IFNAME), host);
    msg.attr_u32(attr_u16(libc::IFLA_MASTER), master);
    msg.nest(attr_u16(libc::IFLA_LINKINFO), |m| {
        m.attr(attr_u16(libc::IFLA_INFO_KIND), b"veth");
        m.nest(attr_u16(libc::IFLA_INFO_DATA), |m| {
            // The peer's payload is an ifinfomsg followed by its attributes; the
            // nest builder writes attributes only, so the header goes in as the
            // first bytes of a nest of our own.
            let at = m.nest_start(VETH_INFO_PEER);
            m.raw(&ifinfo(0, false));
            m.attr_str(attr_u16(libc::IFLA_IFNAME), peer);
            m.attr(attr_u16(libc::IFLA_ADDRESS), &peer_mac);
            m.attr_u32(attr_u16(libc::IFLA_NET_NS_PID), pid);
            m.nest_end(at);
        });
    });
    msg
}

/// Makes bridge port `port` isolated: it reaches the bridge (the host, and so
/// the outside through NAT) but no other isolated port, that is no other sandbox.
pub fn isolate_port(port: &str) -> Message {
    let mut msg = Message::new(libc::RTM_NEWLINK, NLM_F_ACK).header(&ifinfo(0, false));
    msg.attr_str(attr_u16(libc::IFLA_IFNAME), port);
    msg.nest(attr_u16(libc::IFLA_LINKINFO), |m| {
        m.attr_str(attr_u16(libc::IFLA_INFO_SLAVE_KIND), "bridge");
        m.nest(attr_u16(libc::IFLA_INFO_SLAVE_DATA), |m| {
            m.attr_u8(IFLA_BRPORT_ISOLATED, 1);
        });
    });
    msg
}

/// Adds `addr/prefix` to interface `index`. EEXIST when it has it already.
pub fn new_address(index: u32, addr: Ipv4Addr, prefix: u8) -> Message {
    let mut header = [0u8; 8];
    header[0] = AF_INET;
    header[1] = prefix;
    header[3] = libc::RT_SCOPE_UNIVERSE;
    header[4..8].copy_from_slice(&index.to_ne_bytes());
    let mut msg =
        Message::new(libc::RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).header(&header);
    msg.attr(attr_u16(libc::IFA_LOCAL), &addr.octets());
    msg.attr(attr_u16(libc::IFA_ADDRESS), &addr.octets());
    msg
}

/// The default route via `gateway` out of interface `index`, in the main table.
pub fn new_default_route(index: u32, gateway: Ipv4Addr) -> Message {
    let mut header = [0u8; 12];
    header[0] = AF_INET;
    header[4] = libc::RT_TABLE_MAIN;
    header[5] = libc::RTPROT_STATIC;
    header[6] = libc::RT_SCOPE_UNIVERSE;
    header[7] = libc::RTN_UNICAST;
    let mut msg =
        Message::new(libc::RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).header(&header);
    msg.attr(attr_u16(libc::RTA_GATEWAY), &gateway.octets());
    msg.attr_u32(attr_u16(libc::RTA_OIF), index);
    msg
}

/// Deletes link `name` (and, for a veth, its peer).
pub fn delete_link(name: &str) -> Message {
    let mut msg = Message::new(libc::RTM_DELLINK, NLM_F_ACK).header(&ifinfo(0, false));
    msg.attr_str(attr_u16(libc::IFLA_IFNAME), name);
    msg
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;
    use crate::net::netlink::{attrs, HEADER_LEN};

    fn body(msg: Message) -> Vec<u8> {
        msg.finish(1)[HEADER_LEN..].to_vec()
    }

    /// Golden bytes, checked once against `ip link add microbox0 up type bridge`
    /// as `strace -xx -e sendmsg` shows it: the same 64 bytes but for the nest
    /// flag, which iproute2 leaves off and the kernel accepts either way.
    #[test]
    fn a_bridge_request_reads_as_ip_writes_it() {
        let bytes = body(new_bridge("microbox0"));
        let want: &[u8] = &[
            0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, // ifinfomsg, IFF_UP
            14, 0, 3, 0, b'm', b'i', b'c', b'r', b'o', b'b', b'o', b'x', b'0', 0, 0, 0, //
            16, 0, 18, 0x80, 10, 0, 1, 0, b'b', b'r', b'i', b'd', b'g', b'e', 0, 0, //
            8, 0, 27, 0, 0x30, 0x78, 0x62, 0x6d, // IFLA_GROUP
        ];
        assert_eq!(bytes, want);
        assert_eq!(link_group(&bytes), Some(BRIDGE_GROUP));
        assert_eq!(link_group(&bytes[..48]), None);
    }

    #[test]
    fn a_veth_peer_is_born_in_the_sandbox_namespace_with_its_mac() {
        let mac = [2, 0, 10, 44, 0, 5];
        let bytes = body(new_veth_pair("mbx-a", 7, "eth0", mac, 4242));
        let top: Vec<_> = attrs(&bytes[16..]).map(Result::unwrap).collect();
        assert_eq!(top[0], (3, &b"mbx-a\0"[..]));
        assert_eq!(top[1], (10, &7u32.to_ne_bytes()[..]));
        let (_, linkinfo) = top[2];
        let info: Vec<_> = attrs(linkinfo).map(Result::unwrap).collect();
        assert_eq!(info[0], (1, &b"veth"[..]));
        let (_, data) = info[1];
        let (kind, peer) = attrs(data).next().unwrap().unwrap();
        assert_eq!(kind, VETH_INFO_PEER);
        let peer_attrs: Vec<_> = attrs(&peer[16..]).map(Result::unwrap).collect();
        assert_eq!(
            peer_attrs,
            [
                (3, &b"eth0\0"[..]),
                (1, &mac[..]),
                (19, &4242u32.to_ne_bytes()[..])
            ]
        );
    }

    #[test]
    fn address_and_route_carry_family_prefix_and_gateway() {
        let addr = body(new_address(3, Ipv4Addr::new(10, 44, 0, 1), 24));
        assert_eq!(&addr[..8], &[2, 24, 0, 0, 3, 0, 0, 0]);
        let found: Vec<_> = attrs(&addr[8..]).map(Result::unwrap).collect();
        assert_eq!(found, [(2, &[10, 44, 0, 1][..]), (1, &[10, 44, 0, 1][..])]);
        let route = body(new_default_route(2, Ipv4Addr::new(10, 44, 0, 1)));
        assert_eq!(&route[..12], &[2, 0, 0, 0, 254, 4, 0, 1, 0, 0, 0, 0]);
        let found: Vec<_> = attrs(&route[12..]).map(Result::unwrap).collect();
        assert_eq!(
            found,
            [(5, &[10, 44, 0, 1][..]), (4, &2u32.to_ne_bytes()[..])]
        );
    }

    #[test]
    fn port_isolation_is_bridge_slave_data() {
        let bytes = body(isolate_port("mbx-a"));
        let top: Vec<_> = attrs(&bytes[16..]).map(Result::unwrap).collect();
        let info: Vec<_> = attrs(top[1].1).map(Result::unwrap).collect();
        assert_eq!(info[0], (4, &b"bridge\0"[..]));
        assert_eq!(
            attrs(info[1].1).next().unwrap().unwrap(),
            (IFLA_BRPORT_ISOLATED, &[1u8][..])
        );
    }
}
