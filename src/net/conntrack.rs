//! Connection-tracking entries of one sandbox address, as ctnetlink messages
//! (`<linux/netfilter/nfnetlink_conntrack.h>`). Pure: requests and the reader
//! of their replies; `bridge.rs` sends them.
//!
//! Why: the kernel keeps a flow's conntrack entry, with its NAT binding, after
//! the sandbox that owned it is gone. A client that keeps sending on a flow
//! that came in through a published port would be DNAT'd to the next sandbox
//! given that address, and replies to the old sandbox's outbound flows would
//! reach it too. So before an address is handed out again, every entry whose
//! original source (the sandbox's own flows) or reply source (flows DNAT'd to
//! it) is that address goes.
//!
//! Except a TCP flow already closing (FIN or RST seen): the sandbox's kernel
//! may still be finishing it, an orphaned socket retransmitting its FIN, and
//! that socket holds the sandbox's network namespace, and so its veth on the
//! host, until the peer's ACK comes back through the NAT binding, or for the
//! two minutes of the kernel's retries when the binding is gone. Such an entry
//! times out within two minutes on its own, and can carry nothing to the next
//! holder of the address: that sandbox has no socket for it (its kernel
//! answers RST), and a new SYN on the tuple makes the kernel drop the old
//! entry and NAT afresh.

use std::net::Ipv4Addr;

use super::netlink::{attrs, Malformed, Message, NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

// enum ctattr_type
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_PROTOINFO: u16 = 4;
const CTA_ZONE: u16 = 18;
const CTA_FILTER: u16 = 25;
// enum ctattr_tuple
const CTA_TUPLE_IP: u16 = 1;
// enum ctattr_ip
const CTA_IP_V4_SRC: u16 = 1;
// enum ctattr_protoinfo, enum ctattr_protoinfo_tcp
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
/// `enum tcp_conntrack`: FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE.
const TCP_CLOSING_STATES: std::ops::RangeInclusive<u8> = 4..=8;
// enum ctattr_filter
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
/// `AF_INET` as nfgenmsg's u8 (libc has it as an int).
const AF_INET: u8 = 2;
/// `CTA_FILTER_FLAG(CTA_IP_SRC)`: match the tuple's source address only.
const FILTER_IP_SRC: u32 = 1;

/// Which tuple of an entry a dump matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The original tuple: flows the address started.
    Original,
    /// The reply tuple: flows that were NAT'd to the address.
    Reply,
}

/// One entry to delete: its original tuple (and zone) as the kernel sent them,
/// which is what IPCTNL_MSG_CT_DELETE looks an entry up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    orig_tuple: Vec<u8>,
    zone: Option<Vec<u8>>,
}

/// `struct nfgenmsg` for AF_INET, version 0, resource id 0.
fn nfgen_inet() -> [u8; 4] {
    [AF_INET, 0, 0, 0]
}

/// A dump of the IPv4 entries whose `direction` tuple has source `addr`. The
/// kernel filters (CTA_FILTER, Linux 5.8 and later); an older one ignores the
/// filter and sends all, which [`flows_from`] sorts out.
pub fn dump_by_source(addr: Ipv4Addr, direction: Direction) -> Message {
    let (tuple, flags) = match direction {
        Direction::Original => (CTA_TUPLE_ORIG, CTA_FILTER_ORIG_FLAGS),
        Direction::Reply => (CTA_TUPLE_REPLY, CTA_FILTER_REPLY_FLAGS),
    };
    let mut m = Message::new((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, NLM_F_DUMP)
        .header(&nfgen_inet());
    m.nest(tuple, |m| {
        m.nest(CTA_TUPLE_IP, |m| {
            m.attr(CTA_IP_V4_SRC, &addr.octets());
        });
    });
    m.nest(CTA_FILTER, |m| {
        m.attr_u32(flags, FILTER_IP_SRC);
    });
    m
}

/// The entries of a dump (payloads after the netlink header) whose original
/// or reply source is `addr`; with `keep_closing` (the owner's own teardown
/// only: the address is not leased again while its veth lives) not the TCP
/// flows already closing.
pub fn flows_from(
    entries: &[Vec<u8>],
    addr: Ipv4Addr,
    keep_closing: bool,
) -> Result<Vec<Flow>, Malformed> {
    let mut flows = Vec::new();
    for entry in entries {
        let body = entry.get(4..).ok_or(Malformed("short nfgenmsg"))?;
        let mut orig = None;
        let mut zone = None;
        let mut sources = Vec::new();
        let mut closing = false;
        for attr in attrs(body) {
            let (kind, value) = attr?;
            match kind {
                CTA_TUPLE_ORIG => {
                    orig = Some(value.to_vec());
                    sources.push(tuple_source(value)?);
                }
                CTA_TUPLE_REPLY => sources.push(tuple_source(value)?),
                CTA_ZONE => zone = Some(value.to_vec()),
                CTA_PROTOINFO => closing = tcp_is_closing(value)?,
                _ => {}
            }
        }
        let Some(orig_tuple) = orig else {
            return Err(Malformed("conntrack entry without its original tuple"));
        };
        if sources.contains(&Some(addr)) && !(keep_closing && closing) {
            flows.push(Flow { orig_tuple, zone });
        }
    }
    Ok(flows)
}

/// The IPv4 source of a tuple's attributes; None for another family.
fn tuple_source(tuple: &[u8]) -> Result<Option<Ipv4Addr>, Malformed> {
    for attr in attrs(tuple) {
        let (kind, value) = attr?;
        if kind != CTA_TUPLE_IP {
            continue;
        }
        for ip in attrs(value) {
            let (kind, value) = ip?;
            if kind == CTA_IP_V4_SRC {
                let octets: [u8; 4] = value
                    .try_into()
                    .map_err(|_| Malformed("IPv4 source of the wrong length"))?;
                return Ok(Some(Ipv4Addr::from(octets)));
            }
        }
    }
    Ok(None)
}

/// Whether a CTA_PROTOINFO says a TCP flow in one of the closing states.
fn tcp_is_closing(protoinfo: &[u8]) -> Result<bool, Malformed> {
    for attr in attrs(protoinfo) {
        let (kind, value) = attr?;
        if kind != CTA_PROTOINFO_TCP {
            continue;
        }
        for tcp in attrs(value) {
            let (kind, value) = tcp?;
            if kind == CTA_PROTOINFO_TCP_STATE {
                let state = *value.first().ok_or(Malformed("empty TCP state"))?;
                return Ok(TCP_CLOSING_STATES.contains(&state));
            }
        }
    }
    Ok(false)
}

/// Deletes `flow` (acked; ENOENT when it expired meanwhile).
pub fn delete(flow: &Flow) -> Message {
    let mut m = Message::new(
        (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
        NLM_F_ACK,
    )
    .header(&nfgen_inet());
    m.attr(CTA_TUPLE_ORIG | NLA_F_NESTED, &flow.orig_tuple);
    if let Some(zone) = &flow.zone {
        m.attr(CTA_ZONE, zone);
    }
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;
    use crate::net::netlink::HEADER_LEN;

    const ADDR: Ipv4Addr = Ipv4Addr::new(10, 44, 0, 5);

    /// A dumped entry: orig 198.51.100.2 -> 198.51.100.1, reply from `reply_src`.
    fn entry(orig_src: Ipv4Addr, reply_src: Ipv4Addr) -> Vec<u8> {
        let mut m = Message::new(0, 0).header(&nfgen_inet());
        for (tuple, src, dst) in [
            (CTA_TUPLE_ORIG, orig_src, Ipv4Addr::new(198, 51, 100, 1)),
            (CTA_TUPLE_REPLY, reply_src, orig_src),
        ] {
            m.nest(tuple, |m| {
                m.nest(CTA_TUPLE_IP, |m| {
                    m.attr(CTA_IP_V4_SRC, &src.octets());
                    m.attr(2, &dst.octets());
                });
            });
        }
        m.finish(0)[HEADER_LEN..].to_vec()
    }

    /// The request's bytes (conntrack-tools 1.4.7 filters in userspace, so
    /// there is nothing of theirs to compare with: the test below shows the
    /// kernel takes these and filters on them).
    #[test]
    fn a_dump_by_reply_source_carries_the_source_and_the_filter_flags() {
        let bytes = dump_by_source(ADDR, Direction::Reply).finish(7);
        assert_eq!(&bytes[4..6], &0x0101u16.to_ne_bytes()); // CTNETLINK << 8 | CT_GET
        assert_eq!(&bytes[16..20], &[2, 0, 0, 0]); // AF_INET, v0
                                                   // Nest CTA_TUPLE_REPLY (16 bytes), nest CTA_TUPLE_IP, CTA_IP_V4_SRC.
        #[rustfmt::skip]
        let tuple_reply = [16, 0, 2, 0x80, 12, 0, 1, 0x80, 8, 0, 1, 0, 10, 44, 0, 5];
        assert_eq!(&bytes[20..36], &tuple_reply);
        // Nest CTA_FILTER, CTA_FILTER_REPLY_FLAGS = CTA_IP_SRC.
        let filter = [12, 0, 25, 0x80, 8, 0, 2, 0, 1, 0, 0, 0];
        assert_eq!(&bytes[36..48], &filter);
        assert_eq!(bytes.len(), 48);
    }

    #[test]
    fn flows_of_the_address_in_either_direction_are_found() {
        let outside = Ipv4Addr::new(198, 51, 100, 2);
        let other = Ipv4Addr::new(10, 44, 0, 6);
        let entries = vec![
            entry(outside, ADDR),  // DNAT'd to it through a published port
            entry(ADDR, outside),  // its own flow out
            entry(other, outside), // another sandbox's
        ];
        let flows = flows_from(&entries, ADDR, true).unwrap();
        assert_eq!(flows.len(), 2);
        // The delete carries the original tuple as dumped.
        let bytes = delete(&flows[0]).finish(1);
        assert_eq!(&bytes[4..6], &0x0102u16.to_ne_bytes());
        assert_eq!(
            &bytes[20..22],
            &u16::try_from(4 + flows[0].orig_tuple.len())
                .unwrap()
                .to_ne_bytes()
        );
        assert!(bytes.windows(4).any(|w| w == [198, 51, 100, 2]));
    }

    /// `entry` with a CTA_PROTOINFO for TCP in conntrack state `state`.
    fn tcp_entry(orig_src: Ipv4Addr, reply_src: Ipv4Addr, state: u8) -> Vec<u8> {
        let mut m = Message::new(0, 0).header(&[]);
        m.nest(CTA_PROTOINFO, |m| {
            m.nest(CTA_PROTOINFO_TCP, |m| {
                m.attr(CTA_PROTOINFO_TCP_STATE, &[state]);
            });
        });
        let mut bytes = entry(orig_src, reply_src);
        bytes.extend_from_slice(&m.finish(0)[HEADER_LEN..]);
        bytes
    }

    #[test]
    fn tcp_flows_already_closing_are_left_to_finish() {
        let outside = Ipv4Addr::new(198, 51, 100, 2);
        // SYN_SENT, ESTABLISHED and SYN_SENT2 go; FIN_WAIT to CLOSE stay.
        let kept: Vec<u8> = (0..=9)
            .filter(|&state| {
                flows_from(&[tcp_entry(ADDR, outside, state)], ADDR, true)
                    .unwrap()
                    .is_empty()
            })
            .collect();
        assert_eq!(kept, [4, 5, 6, 7, 8]);
        // Anyone else's collection of the address takes them all.
        assert_eq!(
            flows_from(&[tcp_entry(ADDR, outside, 6)], ADDR, false)
                .unwrap()
                .len(),
            1
        );
        let mut short = entry(ADDR, outside);
        short.extend_from_slice(&[12, 0, 4, 0x80, 8, 0, 1, 0x80, 4, 0, 1, 0]);
        assert!(flows_from(&[short], ADDR, true).is_err());
    }

    #[test]
    fn malformed_entries_are_an_error_never_a_panic() {
        let good = entry(ADDR, ADDR);
        for cut in 0..good.len() {
            let _ = flows_from(&[good[..cut].to_vec()], ADDR, true);
        }
        assert!(flows_from(&[vec![2, 0]], ADDR, true).is_err());
        // An entry without an original tuple cannot be deleted.
        let bare = Message::new(0, 0).header(&nfgen_inet()).finish(0)[HEADER_LEN..].to_vec();
        assert!(flows_from(&[bare], ADDR, true).is_err());
        // A source of the wrong length.
        let mut bad = good;
        bad[4 + 4 + 4] = 7;
        assert!(flows_from(&[bad], ADDR, true).is_err());
    }

    /// Against the kernel, in a network namespace of the test's own: entries
    /// made with conntrack(8) (no traffic), a dump the kernel filters, and
    /// `forget_flows` removing the address's entries and no other. Root only.
    #[test]
    fn the_kernel_filters_the_dump_and_only_the_addresss_flows_go() {
        const NAME: &str =
            "net::conntrack::tests::the_kernel_filters_the_dump_and_only_the_addresss_flows_go";
        if !std::path::Path::new("/usr/sbin/conntrack").exists() {
            eprintln!("skipped: needs conntrack(8) to make entries");
            return;
        }
        let Some(stdout) = crate::in_new_netns(NAME, in_namespace) else {
            return;
        };
        let left = stdout
            .split("--- left ---\n")
            .nth(1)
            .and_then(|rest| rest.split("--- end ---").next())
            .unwrap();
        let lines: Vec<&str> = left.lines().collect();
        assert_eq!(lines.len(), 1, "{left}");
        assert!(lines[0].contains("src=10.44.0.6 "), "{left}");
    }

    fn in_namespace() {
        use crate::net::nlsock::{Bus, Netlink};
        let conntrack = |args: &str| {
            let out = std::process::Command::new("/usr/sbin/conntrack")
                .args(args.split(' '))
                .output()
                .unwrap();
            assert!(out.status.success(), "conntrack {args}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        // Its own flow out; a flow in through a published port (DNAT'd to
        // it); another address's flow.
        conntrack("-I -s 10.44.0.5 -d 198.51.100.2 -p udp --sport 1000 --dport 53 -t 30");
        conntrack(
            "-I -s 198.51.100.2 -d 198.51.100.1 -r 10.44.0.5 -q 198.51.100.2 -p udp \
             --sport 2000 --dport 8082 --reply-port-src 7 --reply-port-dst 2000 -t 30",
        );
        conntrack("-I -s 10.44.0.6 -d 198.51.100.2 -p udp --sport 1000 --dport 53 -t 30");
        let mut nl = Netlink::open(Bus::Netfilter).unwrap();
        for direction in [Direction::Original, Direction::Reply] {
            let entries = nl.dump(dump_by_source(ADDR, direction)).unwrap();
            assert_eq!(entries.len(), 1, "{direction:?}: the kernel did not filter");
        }
        crate::net::bridge::forget_flows(ADDR, false).unwrap();
        println!("--- left ---\n{}--- end ---", conntrack("-L"));
    }
}
