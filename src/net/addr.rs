//! Bridge mode's values as data, and their parsers: the subnet, published
//! ports and egress allow-list entries; the names and MAC a sandbox's veth
//! gets. Pure, no I/O: the CLI validates with these, and they are fuzzed.

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 network: `10.44.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

/// The bridge's default network (DESIGN.md section 7).
pub const DEFAULT_SUBNET: Subnet = Subnet {
    network: Ipv4Addr::new(10, 44, 0, 0),
    prefix: 24,
};
pub const DEFAULT_BRIDGE: &str = "microbox0";

/// Below /16 the lease directory would hold more files than is sensible to
/// scan; above /30 there is no address left for a sandbox.
const MIN_PREFIX: u8 = 16;
const MAX_PREFIX: u8 = 30;

impl Subnet {
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or("expected an IPv4 network such as 10.44.0.0/24")?;
        let network: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("prefix {prefix:?} is not a number"))?;
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&prefix) {
            return Err(format!(
                "prefix /{prefix} is out of range (use /{MIN_PREFIX} to /{MAX_PREFIX})"
            ));
        }
        let subnet = Subnet { network, prefix };
        if u32::from(network) & !subnet.mask() != 0 {
            let base = Ipv4Addr::from(u32::from(network) & subnet.mask());
            return Err(format!(
                "host bits are set (the network is {base}/{prefix})"
            ));
        }
        // Only unicast space a host routes: not loopback, link-local,
        // multicast, reserved or "this network".
        let first = network.octets()[0];
        if network.is_loopback() || network.is_link_local() || first == 0 || first >= 224 {
            return Err(format!(
                "{network}/{prefix} is not unicast address space a bridge can use \
                 (loopback, link-local, multicast or reserved)"
            ));
        }
        Ok(subnet)
    }

    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    pub fn overlaps(self, other: Subnet) -> bool {
        let wider = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        let narrower = if self.prefix <= other.prefix {
            other
        } else {
            self
        };
        wider.contains(narrower.network)
    }

    /// The bridge's own address: the first of the network.
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The addresses sandboxes may lease: after the gateway, before the broadcast.
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        self.hosts_after(None)
    }

    /// The sandbox addresses, starting after `last` and wrapping around (all
    /// of them from the first when `last` is None or not one of them).
    pub fn hosts_after(self, last: Option<Ipv4Addr>) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let broadcast = u32::from(self.network) | !self.mask();
        let start = last
            .map(u32::from)
            .filter(|l| (first..broadcast).contains(l))
            .map_or(first, |l| l + 1);
        (start..broadcast).chain(first..start).map(Ipv4Addr::from)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// `--publish [HOSTIP:]HOSTPORT:PORT[/tcp|/udp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub port: u16,
    pub proto: Proto,
}

/// Splits a trailing `/tcp` or `/udp`.
fn split_proto(text: &str) -> Result<(&str, Option<Proto>), String> {
    match text.rsplit_once('/') {
        Some((rest, "tcp")) => Ok((rest, Some(Proto::Tcp))),
        Some((rest, "udp")) => Ok((rest, Some(Proto::Udp))),
        // A word after the last '/' is a protocol; digits are a prefix length.
        Some((_, other)) if other.chars().all(|c| c.is_ascii_alphabetic()) => {
            Err(format!("unknown protocol {other:?} (use tcp or udp)"))
        }
        _ => Ok((text, None)),
    }
}

fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {text:?} is not a number from 1 to 65535")),
        Ok(port) => Ok(port),
    }
}

impl Publish {
    pub fn parse(text: &str) -> Result<Publish, String> {
        let (rest, proto) = split_proto(text)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (host_ip, host_port, inner) = match parts[..] {
            [host_port, inner] => (None, host_port, inner),
            [ip, host_port, inner] => {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
                (Some(ip), host_port, inner)
            }
            _ => return Err("expected [HOSTIP:]HOSTPORT:PORT[/tcp|/udp]".into()),
        };
        Ok(Publish {
            host_ip,
            host_port: port(host_port)?,
            port: port(inner)?,
            proto: proto.unwrap_or(Proto::Tcp),
        })
    }
}

/// `--net-allow CIDR[:PORT[-PORT]][/tcp|/udp]`: one destination the sandbox
/// may connect to; a bare address is a /32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allow {
    pub dest: Subnet,
    pub ports: Option<(u16, u16)>,
    pub proto: Option<Proto>,
}

impl Allow {
    pub fn parse(text: &str) -> Result<Allow, String> {
        let (rest, proto) = split_proto(text)?;
        let (dest, ports) = match rest.split_once(':') {
            Some((dest, ports)) => (dest, Some(ports)),
            None => (rest, None),
        };
        let dest = if dest.contains('/') {
            let (addr, prefix) = dest.split_once('/').unwrap_or((dest, "32"));
            let network: Ipv4Addr = addr
                .parse()
                .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| format!("prefix {prefix:?} is not 0 to 32"))?;
            let subnet = Subnet { network, prefix };
            if u32::from(network) & !subnet.mask() != 0 {
                return Err(format!("host bits are set in {dest}"));
            }
            subnet
        } else {
            Subnet {
                network: dest
                    .parse()
                    .map_err(|_| format!("{dest:?} is not an IPv4 address or network"))?,
                prefix: 32,
            }
        };
        let ports = match ports {
            None => None,
            Some(range) => {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                let (lo, hi) = (port(lo)?, port(hi)?);
                if lo > hi {
                    return Err(format!("port range {lo}-{hi} is backwards"));
                }
                Some((lo, hi))
            }
        };
        // A port without a protocol allows it for tcp and udp both.
        Ok(Allow { dest, ports, proto })
    }
}

/// The host end of a sandbox's veth: `mbx` and its address in hex (11 of the
/// 15 characters IFNAMSIZ allows). Named by address, not by sandbox, so that a
/// veth the kernel has not yet removed for a sandbox that ended is found by the
/// next holder of the address (creating its own fails with EEXIST).
pub fn host_veth_name(addr: Ipv4Addr) -> String {
    format!("mbx{:08x}", u32::from(addr))
}

/// The sandbox's MAC: locally administered, unicast, the address in its last
/// four bytes, so the anti-spoofing rules know it before the link exists.
pub fn sandbox_mac(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x6d, a, b, c, d]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_name_their_addresses() {
        let s = Subnet::parse("10.44.0.0/24").unwrap();
        assert_eq!(s, DEFAULT_SUBNET);
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 44, 0, 1));
        let hosts: Vec<_> = s.hosts().collect();
        assert_eq!(hosts.len(), 253);
        assert_eq!(hosts[0], Ipv4Addr::new(10, 44, 0, 2));
        assert_eq!(hosts[252], Ipv4Addr::new(10, 44, 0, 254));
        let tiny = Subnet::parse("192.0.2.0/30").unwrap();
        assert_eq!(
            tiny.hosts().collect::<Vec<_>>(),
            [Ipv4Addr::new(192, 0, 2, 2)]
        );
        assert_eq!(s.to_string(), "10.44.0.0/24");
        // After a given address, round the subnet once; an outsider starts at the first.
        let after: Vec<_> = s.hosts_after(Some(Ipv4Addr::new(10, 44, 0, 200))).collect();
        assert_eq!(after.len(), 253);
        assert_eq!(after[0], Ipv4Addr::new(10, 44, 0, 201));
        assert_eq!(after[252], Ipv4Addr::new(10, 44, 0, 200));
        let last: Vec<_> = s.hosts_after(Some(Ipv4Addr::new(10, 44, 0, 254))).collect();
        assert_eq!(last[0], Ipv4Addr::new(10, 44, 0, 2));
        for outside in [Ipv4Addr::new(10, 44, 0, 1), Ipv4Addr::new(192, 0, 2, 7)] {
            assert_eq!(s.hosts_after(Some(outside)).collect::<Vec<_>>(), hosts);
        }
        assert_eq!(
            tiny.hosts_after(Some(Ipv4Addr::new(192, 0, 2, 2)))
                .collect::<Vec<_>>(),
            [Ipv4Addr::new(192, 0, 2, 2)]
        );
    }

    #[test]
    fn bad_subnets_say_why() {
        for (text, why) in [
            ("127.0.0.0/24", "not unicast"),
            ("169.254.0.0/16", "not unicast"),
            ("224.0.0.0/24", "not unicast"),
            ("0.0.0.0/16", "not unicast"),
            ("240.0.0.0/24", "not unicast"),
            (
                "10.44.0.1/24",
                "host bits are set (the network is 10.44.0.0/24)",
            ),
            ("10.44.0.0", "expected an IPv4 network"),
            ("10.44.0.0/8", "out of range"),
            ("10.44.0.0/31", "out of range"),
            ("10.44.0/24", "not an IPv4 address"),
            ("10.44.0.0/x", "not a number"),
            ("::1/64", "not an IPv4 address"),
        ] {
            let err = Subnet::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn overlap_is_symmetric() {
        let a = Subnet::parse("10.44.0.0/24").unwrap();
        let b = Subnet::parse("10.44.0.128/25").unwrap();
        let c = Subnet::parse("10.45.0.0/16").unwrap();
        assert!(a.overlaps(b) && b.overlaps(a));
        assert!(!a.overlaps(c) && !c.overlaps(a));
    }

    #[test]
    fn published_ports_parse_with_defaults() {
        assert_eq!(
            Publish::parse("8080:80").unwrap(),
            Publish {
                host_ip: None,
                host_port: 8080,
                port: 80,
                proto: Proto::Tcp
            }
        );
        let p = Publish::parse("198.51.100.1:5353:53/udp").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!((p.host_port, p.port, p.proto), (5353, 53, Proto::Udp));
        for bad in [
            "80",
            "0:80",
            "8080:70000",
            "a:b:c:d",
            "8080:80/sctp",
            "x:1:2",
        ] {
            assert!(Publish::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allow_entries_parse() {
        let a = Allow::parse("192.0.2.10").unwrap();
        assert_eq!(a.dest.prefix, 32);
        assert_eq!((a.ports, a.proto), (None, None));
        let b = Allow::parse("198.51.100.0/24:443/tcp").unwrap();
        assert_eq!(
            (b.dest.prefix, b.ports, b.proto),
            (24, Some((443, 443)), Some(Proto::Tcp))
        );
        let c = Allow::parse("192.0.2.0/24:1000-2000").unwrap();
        assert_eq!(c.ports, Some((1000, 2000)));
        for bad in [
            "192.0.2.1/24",
            "192.0.2.0/33",
            "example.com",
            "192.0.2.0/24:2000-1000",
            "192.0.2.1:0",
            "192.0.2.1/icmp",
        ] {
            assert!(Allow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn veth_names_fit_ifnamsiz_and_macs_are_local_unicast() {
        assert_eq!(host_veth_name(Ipv4Addr::new(10, 44, 0, 5)), "mbx0a2c0005");
        assert!(host_veth_name(Ipv4Addr::new(255, 255, 255, 255)).len() <= 15);
        let mac = sandbox_mac(Ipv4Addr::new(10, 44, 0, 5));
        assert_eq!(mac[0] & 0b11, 0b10);
        assert_eq!(&mac[2..], &[10, 44, 0, 5]);
    }
}
