//! nf_tables over netlink: the tables, chains and rules of bridge mode as
//! data (`Table`, `Chain`, `Rule` of `Expr`s), and their encoding into one
//! atomic batch. The expressions are the ones `nft --debug=netlink` shows
//! nft(8) generating for the same rules; the rulesets below say each rule in
//! nft's words, and a test loads them and reads them back with `nft list`.
//!
//! Numbers from `<linux/netfilter/nf_tables.h>`, `nfnetlink.h`, `nf_nat.h`,
//! `nf_conntrack_common.h`. nf_tables' u32 attributes are big-endian.

use std::net::Ipv4Addr;

use super::addr::{Allow, Proto, Publish, Subnet};
use super::netlink::{
    attrs, c_string, Malformed, Message, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
};

// nfnetlink
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNETLINK_V0: u8 = 0;
/// `NLM_F_APPEND` (`<linux/netlink.h>`), for new rules.
const NLM_F_APPEND: u16 = 0x800;

// enum nf_tables_msg_types
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;

// attributes
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_HOOK_DEV: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

/// nf_tables' families (`NFPROTO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet = 1,
    Netdev = 5,
}

const NFPROTO_IPV4: u32 = 2;

/// Where a base chain hooks in: `NF_INET_*`, or (netdev family) the ingress
/// of one device, `NF_NETDEV_INGRESS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
    Ingress { device: String },
}

impl Hook {
    fn number(&self) -> u32 {
        match self {
            Hook::Prerouting | Hook::Ingress { .. } => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }
}

/// The registers microbox's rules use: `NFT_REG_1`, `NFT_REG_2` (16 bytes
/// each, wide enough for an interface name), and the verdict register.
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
    Lte = 3,
    Gte = 5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop = 0,
    Accept = 1,
}

/// Where a payload expression reads (`enum nft_payload_bases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Link = 0,
    Network = 1,
    Transport = 2,
}

/// One expression of a rule; loads go to register 1 unless said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load KEY => reg 1` (`enum nft_meta_keys`).
    Meta(u32),
    /// `cmp OP reg 1 DATA`.
    Cmp(CmpOp, Vec<u8>),
    /// `payload load LEN @ BASE + OFFSET => reg 1`.
    Payload(Base, u32, u32),
    /// `bitwise reg 1 = (reg 1 & MASK) ^ 0`.
    And(Vec<u8>),
    /// `ct load KEY => reg 1` (`enum nft_ct_keys`).
    Ct(u32),
    /// `fib daddr type => reg 1`: the address type of the destination.
    FibDaddrType,
    /// `immediate reg R DATA`.
    Load(u32, Vec<u8>),
    Verdict(Verdict),
    /// `nat dnat ip addr_min reg 1 proto_min reg 2`.
    DnatIpv4,
    Masquerade,
    /// `reject type T code C` (`enum nft_reject_types`, ICMP codes).
    Reject(u32, u8),
}

// enum nft_meta_keys
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
// enum nft_ct_keys
const NFT_CT_STATE: u32 = 0;
const NFT_CT_STATUS: u32 = 2;
/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)`.
const CT_ESTABLISHED_RELATED: u32 = 0x6;
/// `IPS_DST_NAT`: the connection's destination was rewritten (a published port).
const IPS_DST_NAT: u32 = 0x20;
/// `RTN_LOCAL`: an address of this host.
const RTN_LOCAL: u32 = 2;
// enum nft_reject_types and codes
const NFT_REJECT_ICMP_UNREACH: u32 = 0;
const NFT_REJECT_ICMPX_UNREACH: u32 = 2;
const ICMP_PORT_UNREACH: u8 = 3;
const NFT_REJECT_ICMPX_PORT_UNREACH: u8 = 1;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;

/// A rule: its chain and its expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: &'static str,
    pub exprs: Vec<Expr>,
}

/// A base chain: attached to `hook` at `priority`, policy accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: &'static str,
    pub kind: &'static str,
    pub hook: Hook,
    pub priority: i32,
}

/// A table with its chains and rules, made in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: Family,
    pub name: String,
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
}

const PRIO_FILTER: i32 = 0;
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;

// ---------------------------------------------------------------------------
// matchers, as nft writes them

/// An interface name as the kernel compares it: IFNAMSIZ bytes, NUL padded.
fn ifname(name: &str) -> Vec<u8> {
    let mut out = name.as_bytes().to_vec();
    out.resize(16, 0);
    out
}

/// `iifname NAME` / `oifname NAME` (`!=` when not `eq`).
fn ifname_is(key: u32, name: &str, eq: bool) -> Vec<Expr> {
    let op = if eq { CmpOp::Eq } else { CmpOp::Neq };
    vec![Expr::Meta(key), Expr::Cmp(op, ifname(name))]
}

/// In the inet family, an IPv4 match first checks the packet is IPv4.
fn ipv4_only() -> Vec<Expr> {
    vec![Expr::Meta(NFT_META_NFPROTO), Expr::Cmp(CmpOp::Eq, vec![2])]
}

/// `ip saddr|daddr NET` (offset 12 or 16 of the IPv4 header), as nft does it:
/// whole bytes of the prefix, then a mask for a partial byte.
fn ip_in(offset: u32, net: Subnet, op: CmpOp) -> Vec<Expr> {
    let full = u32::from(net.prefix / 8);
    let octets = net.network.octets();
    let mut out = Vec::new();
    if net.prefix % 8 == 0 {
        out.push(Expr::Payload(Base::Network, offset, full));
        out.push(Expr::Cmp(op, octets[..full as usize].to_vec()));
    } else {
        let mask = u32::MAX << (32 - u32::from(net.prefix));
        out.push(Expr::Payload(Base::Network, offset, 4));
        out.push(Expr::And(mask.to_be_bytes().to_vec()));
        out.push(Expr::Cmp(op, octets.to_vec()));
    }
    out
}

fn host(ip: Ipv4Addr) -> Subnet {
    Subnet {
        network: ip,
        prefix: 32,
    }
}

const SADDR: u32 = 12;
const DADDR: u32 = 16;

/// `meta l4proto P` and, if given, `th dport LO-HI` (or one port).
fn l4(proto: Option<Proto>, ports: Option<(u16, u16)>) -> Vec<Expr> {
    let mut out = Vec::new();
    if let Some(proto) = proto {
        let number = match proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        };
        out.push(Expr::Meta(NFT_META_L4PROTO));
        out.push(Expr::Cmp(CmpOp::Eq, vec![number]));
    }
    if let Some((lo, hi)) = ports {
        out.push(Expr::Payload(Base::Transport, 2, 2));
        if lo == hi {
            out.push(Expr::Cmp(CmpOp::Eq, lo.to_be_bytes().to_vec()));
        } else {
            out.push(Expr::Cmp(CmpOp::Gte, lo.to_be_bytes().to_vec()));
            out.push(Expr::Cmp(CmpOp::Lte, hi.to_be_bytes().to_vec()));
        }
    }
    out
}

/// `ct state established,related` / `ct status dnat`: a bit set.
fn ct_bits(key: u32, bits: u32) -> Vec<Expr> {
    vec![
        Expr::Ct(key),
        Expr::And(bits.to_ne_bytes().to_vec()),
        Expr::Cmp(CmpOp::Neq, 0u32.to_ne_bytes().to_vec()),
    ]
}

fn rule(chain: &'static str, parts: Vec<Vec<Expr>>) -> Rule {
    Rule {
        chain,
        exprs: parts.into_iter().flatten().collect(),
    }
}

fn verdict(v: Verdict) -> Vec<Expr> {
    vec![Expr::Verdict(v)]
}

// ---------------------------------------------------------------------------
// the rulesets

/// The table every sandbox of `bridge` shares, named after it:
///
/// ```text
/// table inet BRIDGE {
///   chain postrouting { type nat hook postrouting priority srcnat; policy accept;
///     ip saddr SUBNET oifname != "BRIDGE" masquerade }
///   chain forward { type filter hook forward priority filter; policy accept;
///     iifname "BRIDGE" oifname "BRIDGE" drop
///     oifname "BRIDGE" ct state established,related accept
///     oifname "BRIDGE" ct status dnat accept
///     oifname "BRIDGE" drop }
///   chain input { type filter hook input priority filter; policy accept;
///     iifname "BRIDGE" ct state established,related accept
///     iifname "BRIDGE" reject }
/// }
/// ```
///
/// Sandboxes reach the outside masqueraded as the host; nothing reaches a
/// sandbox but answers and published ports; no host service answers a
/// sandbox (`reject`: refused at once); traffic between sandboxes routed
/// through the host is dropped (on the bridge itself, port isolation).
pub fn shared_table(bridge: &str, subnet: Subnet) -> Table {
    let iif = |eq| ifname_is(NFT_META_IIFNAME, bridge, eq);
    let oif = |eq| ifname_is(NFT_META_OIFNAME, bridge, eq);
    Table {
        family: Family::Inet,
        name: bridge.to_string(),
        chains: vec![
            Chain {
                name: "postrouting",
                kind: "nat",
                hook: Hook::Postrouting,
                priority: PRIO_SRCNAT,
            },
            Chain {
                name: "forward",
                kind: "filter",
                hook: Hook::Forward,
                priority: PRIO_FILTER,
            },
            Chain {
                name: "input",
                kind: "filter",
                hook: Hook::Input,
                priority: PRIO_FILTER,
            },
        ],
        rules: vec![
            rule(
                "postrouting",
                vec![
                    ipv4_only(),
                    ip_in(SADDR, subnet, CmpOp::Eq),
                    oif(false),
                    vec![Expr::Masquerade],
                ],
            ),
            rule(
                "forward",
                vec![iif(true), oif(true), verdict(Verdict::Drop)],
            ),
            rule(
                "forward",
                vec![
                    oif(true),
                    ct_bits(NFT_CT_STATE, CT_ESTABLISHED_RELATED),
                    verdict(Verdict::Accept),
                ],
            ),
            rule(
                "forward",
                vec![
                    oif(true),
                    ct_bits(NFT_CT_STATUS, IPS_DST_NAT),
                    verdict(Verdict::Accept),
                ],
            ),
            rule("forward", vec![oif(true), verdict(Verdict::Drop)]),
            rule(
                "input",
                vec![
                    iif(true),
                    ct_bits(NFT_CT_STATE, CT_ESTABLISHED_RELATED),
                    verdict(Verdict::Accept),
                ],
            ),
            rule(
                "input",
                vec![
                    iif(true),
                    vec![Expr::Reject(
                        NFT_REJECT_ICMPX_UNREACH,
                        NFT_REJECT_ICMPX_PORT_UNREACH,
                    )],
                ],
            ),
        ],
    }
}

/// One sandbox, as its tables need it.
#[derive(Debug, Clone)]
pub struct SandboxNet<'a> {
    pub id: &'a str,
    pub addr: Ipv4Addr,
    pub publish: &'a [Publish],
    /// Empty: any destination.
    pub allow: &'a [Allow],
    pub dns: &'a [Ipv4Addr],
}

/// The name of a sandbox's own table: `mbx-<id>`.
pub fn sandbox_table_name(id: &str) -> String {
    format!("mbx-{id}")
}

/// The table that ties a bridge port to its one address and MAC, named after
/// the bridge and the address (`<bridge>-<hex address>`): its chain hooks the
/// ingress of the host end of the veth, so it sees every frame the sandbox
/// sends, whatever the sandbox does to its end, before the bridge does.
///
/// ```text
/// table netdev BRIDGE-HEXADDR {
///   chain ingress { type filter hook ingress device "VETH" priority filter; policy accept;
///     ether saddr != MAC drop
///     ether type ip ip saddr != ADDR drop
///     ether type arp arp saddr ether != MAC drop
///     ether type arp arp saddr ip != ADDR drop
///     ether type != ip ether type != arp drop }
/// }
/// ```
///
/// Everything in it follows from the address (the veth is named after it, the
/// MAC made from it), so it is made once per address and kept: sandboxes that
/// hold the address later find it in place, and nothing is deleted when a
/// sandbox ends (a deletion costs an RCU grace period). The kernel unhooks the
/// chain while no device of that name exists (before Linux 6.16 it deletes the
/// chain, and the next holder makes it again). `--net-cleanup` removes them.
pub fn port_table(bridge: &str, veth: &str, addr: Ipv4Addr, mac: [u8; 6]) -> Table {
    let drop_unless = |kind: Vec<Expr>, (base, offset, len): (Base, u32, u32), ours: Vec<u8>| {
        rule(
            "ingress",
            vec![
                kind,
                vec![
                    Expr::Payload(base, offset, len),
                    Expr::Cmp(CmpOp::Neq, ours),
                ],
                verdict(Verdict::Drop),
            ],
        )
    };
    let ether_type = |op, t: u16| {
        vec![
            Expr::Payload(Base::Link, 12, 2),
            Expr::Cmp(op, t.to_be_bytes().to_vec()),
        ]
    };
    let octets = addr.octets().to_vec();
    Table {
        family: Family::Netdev,
        name: port_table_name(bridge, addr),
        chains: vec![Chain {
            name: "ingress",
            kind: "filter",
            hook: Hook::Ingress {
                device: veth.to_string(),
            },
            priority: PRIO_FILTER,
        }],
        rules: vec![
            drop_unless(vec![], (Base::Link, 6, 6), mac.to_vec()),
            drop_unless(
                ether_type(CmpOp::Eq, ETH_P_IP),
                (Base::Network, SADDR, 4),
                octets.clone(),
            ),
            drop_unless(
                ether_type(CmpOp::Eq, ETH_P_ARP),
                (Base::Network, 8, 6),
                mac.to_vec(),
            ),
            drop_unless(
                ether_type(CmpOp::Eq, ETH_P_ARP),
                (Base::Network, 14, 4),
                octets,
            ),
            rule(
                "ingress",
                vec![
                    ether_type(CmpOp::Neq, ETH_P_IP),
                    ether_type(CmpOp::Neq, ETH_P_ARP),
                    verdict(Verdict::Drop),
                ],
            ),
        ],
    }
}

/// `<bridge>-<address in hex>`: the port table of one address of a bridge.
pub fn port_table_name(bridge: &str, addr: Ipv4Addr) -> String {
    format!("{bridge}-{:08x}", u32::from(addr))
}

/// A sandbox's own table, when it publishes ports or has an allow-list (made
/// with the sandbox and deleted with it: what is in it must not reach the
/// address's next holder):
///
/// ```text
/// table inet mbx-ID {
///   chain prerouting { type nat hook prerouting priority dstnat; policy accept;
///     [ip daddr HOSTIP] tcp dport HOSTPORT dnat ip to ADDR:PORT }
///   chain output { type nat hook output priority -100; policy accept;
///     fib daddr type local|ip daddr HOSTIP tcp dport HOSTPORT dnat ip to ADDR:PORT }
///   chain forward { type filter hook forward priority filter; policy accept;
///     ip saddr ADDR ct state established,related accept
///     ip saddr ADDR ip daddr DNS udp|tcp dport 53 accept
///     ip saddr ADDR ip daddr CIDR [meta l4proto P] [th dport LO-HI] accept
///     ip saddr ADDR reject }
/// }
/// ```
pub fn sandbox_table(net: &SandboxNet<'_>) -> Option<Table> {
    let name = sandbox_table_name(net.id);
    if net.publish.is_empty() && net.allow.is_empty() {
        return None;
    }
    let mut inet = Table {
        family: Family::Inet,
        name,
        chains: Vec::new(),
        rules: Vec::new(),
    };
    if !net.publish.is_empty() {
        inet.chains.push(Chain {
            name: "prerouting",
            kind: "nat",
            hook: Hook::Prerouting,
            priority: PRIO_DSTNAT,
        });
        inet.chains.push(Chain {
            name: "output",
            kind: "nat",
            hook: Hook::Output,
            priority: PRIO_DSTNAT,
        });
        for publish in net.publish {
            let to = |p: &Publish| {
                vec![
                    Expr::Load(REG_1, net.addr.octets().to_vec()),
                    Expr::Load(REG_2, p.port.to_be_bytes().to_vec()),
                    Expr::DnatIpv4,
                ]
            };
            let port = l4(
                Some(publish.proto),
                Some((publish.host_port, publish.host_port)),
            );
            // Only connections to the host itself (one of its addresses, or
            // HOSTIP): without `fib daddr type local` the rule would capture
            // every forwarded connection to the port, whoever it was for.
            let local = vec![
                Expr::FibDaddrType,
                Expr::Cmp(CmpOp::Eq, RTN_LOCAL.to_ne_bytes().to_vec()),
            ];
            let on = match publish.host_ip {
                Some(ip) => [ipv4_only(), ip_in(DADDR, host(ip), CmpOp::Eq), local].concat(),
                None => local,
            };
            for chain in ["prerouting", "output"] {
                inet.rules
                    .push(rule(chain, vec![on.clone(), port.clone(), to(publish)]));
            }
        }
    }
    if !net.allow.is_empty() {
        inet.chains.push(Chain {
            name: "forward",
            kind: "filter",
            hook: Hook::Forward,
            priority: PRIO_FILTER,
        });
        let from = || [ipv4_only(), ip_in(SADDR, host(net.addr), CmpOp::Eq)].concat();
        inet.rules.push(rule(
            "forward",
            vec![
                from(),
                ct_bits(NFT_CT_STATE, CT_ESTABLISHED_RELATED),
                verdict(Verdict::Accept),
            ],
        ));
        for dns in net.dns {
            for proto in [Proto::Udp, Proto::Tcp] {
                inet.rules.push(rule(
                    "forward",
                    vec![
                        from(),
                        ip_in(DADDR, host(*dns), CmpOp::Eq),
                        l4(Some(proto), Some((53, 53))),
                        verdict(Verdict::Accept),
                    ],
                ));
            }
        }
        for allow in net.allow {
            // A port without a protocol: one rule each for tcp and udp.
            let protos: Vec<Option<Proto>> = match (allow.proto, allow.ports) {
                (Some(p), _) => vec![Some(p)],
                (None, Some(_)) => vec![Some(Proto::Tcp), Some(Proto::Udp)],
                (None, None) => vec![None],
            };
            for proto in protos {
                inet.rules.push(rule(
                    "forward",
                    vec![
                        from(),
                        ip_in(DADDR, allow.dest, CmpOp::Eq),
                        l4(proto, allow.ports),
                        verdict(Verdict::Accept),
                    ],
                ));
            }
        }
        inet.rules.push(rule(
            "forward",
            vec![
                from(),
                vec![Expr::Reject(NFT_REJECT_ICMP_UNREACH, ICMP_PORT_UNREACH)],
            ],
        ));
    }
    Some(inet)
}

// ---------------------------------------------------------------------------
// encoding

/// `struct nfgenmsg`: family, version, resource id (big-endian).
fn nfgen(family: u8, res_id: u16) -> [u8; 4] {
    let id = res_id.to_be_bytes();
    [family, NFNETLINK_V0, id[0], id[1]]
}

fn nft_message(msg: u16, flags: u16, family: Family) -> Message {
    Message::new((NFNL_SUBSYS_NFTABLES << 8) | msg, flags).header(&nfgen(family as u8, 0))
}

/// `requests` between a batch's begin and end: the kernel applies all or none.
pub fn batch(requests: Vec<Message>) -> Vec<Message> {
    let mut out = Vec::with_capacity(requests.len() + 2);
    out.push(Message::new(NFNL_MSG_BATCH_BEGIN, 0).header(&nfgen(0, NFNL_SUBSYS_NFTABLES)));
    out.extend(requests);
    out.push(Message::new(NFNL_MSG_BATCH_END, 0).header(&nfgen(0, NFNL_SUBSYS_NFTABLES)));
    out
}

/// The messages that make `table` (not yet in a batch). With `exclusive`, a
/// table of that name makes the kernel refuse the whole batch with EEXIST.
pub fn create(table: &Table, exclusive: bool) -> Vec<Message> {
    let mut flags = NLM_F_ACK | NLM_F_CREATE;
    if exclusive {
        flags |= NLM_F_EXCL;
    }
    let mut msgs = Vec::new();
    let mut msg = nft_message(NFT_MSG_NEWTABLE, flags, table.family);
    msg.attr_str(NFTA_TABLE_NAME, &table.name);
    msgs.push(msg);
    for chain in &table.chains {
        let mut msg = nft_message(NFT_MSG_NEWCHAIN, NLM_F_ACK | NLM_F_CREATE, table.family);
        msg.attr_str(NFTA_CHAIN_TABLE, &table.name);
        msg.attr_str(NFTA_CHAIN_NAME, chain.name);
        msg.nest(NFTA_CHAIN_HOOK, |m| {
            m.attr_be32(NFTA_HOOK_HOOKNUM, chain.hook.number());
            m.attr(NFTA_HOOK_PRIORITY, &chain.priority.to_be_bytes());
            if let Hook::Ingress { device } = &chain.hook {
                m.attr_str(NFTA_HOOK_DEV, device);
            }
        });
        msg.attr_be32(NFTA_CHAIN_POLICY, Verdict::Accept as u32);
        msg.attr_str(NFTA_CHAIN_TYPE, chain.kind);
        msgs.push(msg);
    }
    for rule in &table.rules {
        // NLM_F_APPEND: at the end of the chain; without it the kernel puts
        // each rule first, and the chain would read backwards.
        let mut msg = nft_message(
            NFT_MSG_NEWRULE,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
            table.family,
        );
        msg.attr_str(NFTA_RULE_TABLE, &table.name);
        msg.attr_str(NFTA_RULE_CHAIN, rule.chain);
        msg.nest(NFTA_RULE_EXPRESSIONS, |m| {
            for expr in &rule.exprs {
                m.nest(NFTA_LIST_ELEM, |m| encode_expr(m, expr));
            }
        });
        msgs.push(msg);
    }
    msgs
}

/// Deletes table `name` of `family` (and everything in it).
pub fn delete(family: Family, name: &str) -> Message {
    let mut msg = nft_message(NFT_MSG_DELTABLE, NLM_F_ACK, family);
    msg.attr_str(NFTA_TABLE_NAME, name);
    msg
}

/// Asks for chain `chain` of table `table`: its description, or ENOENT.
pub fn get_chain(family: Family, table: &str, chain: &str) -> Message {
    let mut msg = nft_message(NFT_MSG_GETCHAIN, NLM_F_ACK, family);
    msg.attr_str(NFTA_CHAIN_TABLE, table);
    msg.attr_str(NFTA_CHAIN_NAME, chain);
    msg
}

/// Asks for table `name` of `family`: its description, or ENOENT.
pub fn get_table(family: Family, name: &str) -> Message {
    let mut msg = nft_message(NFT_MSG_GETTABLE, NLM_F_ACK, family);
    msg.attr_str(NFTA_TABLE_NAME, name);
    msg
}

/// A dump of every table of `family`.
pub fn list_tables(family: Family) -> Message {
    nft_message(NFT_MSG_GETTABLE, NLM_F_DUMP, family)
}

/// The table names in the entries of a `list_tables` dump.
pub fn table_names(entries: &[Vec<u8>]) -> Result<Vec<String>, Malformed> {
    let mut names = Vec::new();
    for entry in entries {
        let body = entry.get(4..).ok_or(Malformed("short nfgenmsg"))?;
        for attr in attrs(body) {
            let (kind, value) = attr?;
            if kind == NFTA_TABLE_NAME {
                names.push(c_string(value));
            }
        }
    }
    Ok(names)
}

fn data_value(m: &mut Message, attr: u16, bytes: &[u8]) {
    m.nest(attr, |m| {
        m.attr(NFTA_DATA_VALUE, bytes);
    });
}

fn named(m: &mut Message, name: &str, fill: impl FnOnce(&mut Message)) {
    m.attr_str(NFTA_EXPR_NAME, name);
    m.nest(NFTA_EXPR_DATA, fill);
}

fn encode_expr(m: &mut Message, expr: &Expr) {
    match expr {
        Expr::Meta(key) => named(m, "meta", |m| {
            m.attr_be32(2, *key); // NFTA_META_KEY
            m.attr_be32(1, REG_1); // NFTA_META_DREG
        }),
        Expr::Cmp(op, data) => named(m, "cmp", |m| {
            m.attr_be32(1, REG_1); // NFTA_CMP_SREG
            m.attr_be32(2, *op as u32); // NFTA_CMP_OP
            data_value(m, 3, data); // NFTA_CMP_DATA
        }),
        Expr::Payload(base, offset, len) => named(m, "payload", |m| {
            m.attr_be32(1, REG_1); // NFTA_PAYLOAD_DREG
            m.attr_be32(2, *base as u32); // NFTA_PAYLOAD_BASE
            m.attr_be32(3, *offset); // NFTA_PAYLOAD_OFFSET
            m.attr_be32(4, *len); // NFTA_PAYLOAD_LEN
        }),
        Expr::And(mask) => named(m, "bitwise", |m| {
            m.attr_be32(1, REG_1); // NFTA_BITWISE_SREG
            m.attr_be32(2, REG_1); // NFTA_BITWISE_DREG
            m.attr_be32(3, u32::try_from(mask.len()).unwrap_or(4)); // NFTA_BITWISE_LEN
            data_value(m, 4, mask); // NFTA_BITWISE_MASK
            data_value(m, 5, &vec![0; mask.len()]); // NFTA_BITWISE_XOR
        }),
        Expr::Ct(key) => named(m, "ct", |m| {
            m.attr_be32(2, *key); // NFTA_CT_KEY
            m.attr_be32(1, REG_1); // NFTA_CT_DREG
        }),
        Expr::FibDaddrType => named(m, "fib", |m| {
            m.attr_be32(1, REG_1); // NFTA_FIB_DREG
            m.attr_be32(2, 3); // NFTA_FIB_RESULT: NFT_FIB_RESULT_ADDRTYPE
            m.attr_be32(3, 1 << 1); // NFTA_FIB_FLAGS: NFTA_FIB_F_DADDR
        }),
        Expr::Load(reg, data) => named(m, "immediate", |m| {
            m.attr_be32(1, *reg); // NFTA_IMMEDIATE_DREG
            data_value(m, 2, data); // NFTA_IMMEDIATE_DATA
        }),
        Expr::Verdict(verdict) => named(m, "immediate", |m| {
            m.attr_be32(1, REG_VERDICT);
            m.nest(2, |m| {
                m.nest(NFTA_DATA_VERDICT, |m| {
                    m.attr_be32(NFTA_VERDICT_CODE, *verdict as u32);
                });
            });
        }),
        Expr::DnatIpv4 => named(m, "nat", |m| {
            m.attr_be32(1, 1); // NFTA_NAT_TYPE: NFT_NAT_DNAT
            m.attr_be32(2, NFPROTO_IPV4); // NFTA_NAT_FAMILY
            m.attr_be32(3, REG_1); // NFTA_NAT_REG_ADDR_MIN
            m.attr_be32(5, REG_2); // NFTA_NAT_REG_PROTO_MIN
            m.attr_be32(7, 1 << 1); // NFTA_NAT_FLAGS: NF_NAT_RANGE_PROTO_SPECIFIED
        }),
        Expr::Masquerade => named(m, "masq", |_| {}),
        Expr::Reject(kind, code) => named(m, "reject", |m| {
            m.attr_be32(1, *kind); // NFTA_REJECT_TYPE
            m.attr_u8(2, *code); // NFTA_REJECT_ICMP_CODE
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;
    use crate::net::netlink::HEADER_LEN;

    fn flags(bytes: &[u8]) -> u16 {
        u16::from_ne_bytes([bytes[6], bytes[7]])
    }

    #[test]
    fn a_batch_is_framed_and_every_request_asks_for_an_ack() {
        let table = shared_table("microbox0", Subnet::parse("10.44.0.0/24").unwrap());
        let msgs = batch(create(&table, true));
        assert_eq!(msgs.len(), 2 + 1 + 3 + 7);
        let bytes: Vec<Vec<u8>> = msgs
            .into_iter()
            .enumerate()
            .map(|(i, m)| m.finish(u32::try_from(i).unwrap()))
            .collect();
        assert_eq!(
            u16::from_ne_bytes([bytes[0][4], bytes[0][5]]),
            NFNL_MSG_BATCH_BEGIN
        );
        assert_eq!(&bytes[0][HEADER_LEN..], &[0, 0, 0, 10]);
        let last = bytes.last().unwrap();
        assert_eq!(u16::from_ne_bytes([last[4], last[5]]), NFNL_MSG_BATCH_END);
        for inner in &bytes[1..bytes.len() - 1] {
            assert_ne!(flags(inner) & NLM_F_ACK, 0);
            // The nf_tables subsystem in the type's high byte.
            assert_eq!(
                u16::from_ne_bytes([inner[4], inner[5]]) >> 8,
                NFNL_SUBSYS_NFTABLES
            );
        }
        assert_ne!(flags(&bytes[1]) & NLM_F_EXCL, 0);
    }

    /// Golden bytes of one expression: `meta load iifname => reg 1`, as nft
    /// sends it (`nft --debug=netlink,mnl`).
    #[test]
    fn a_meta_expression_reads_as_nft_writes_it() {
        let mut m = Message::new(0, 0);
        m.nest(NFTA_LIST_ELEM, |m| {
            encode_expr(m, &Expr::Meta(NFT_META_IIFNAME))
        });
        let bytes = m.finish(0)[HEADER_LEN..].to_vec();
        let want: &[u8] = &[
            36, 0, 1, 0x80, // list elem
            9, 0, 1, 0, b'm', b'e', b't', b'a', 0, 0, 0, 0, // name "meta"
            20, 0, 2, 0x80, // data
            8, 0, 2, 0, 0, 0, 0, 6, // key iifname (big-endian)
            8, 0, 1, 0, 0, 0, 0, 1, // dreg 1
        ];
        assert_eq!(bytes, want);
    }

    #[test]
    fn prefixes_match_as_nft_matches_them() {
        let whole = ip_in(SADDR, Subnet::parse("10.44.0.0/24").unwrap(), CmpOp::Eq);
        assert_eq!(
            whole,
            [
                Expr::Payload(Base::Network, 12, 3),
                Expr::Cmp(CmpOp::Eq, vec![10, 44, 0])
            ]
        );
        let part = ip_in(SADDR, Subnet::parse("10.44.0.0/28").unwrap(), CmpOp::Eq);
        assert_eq!(part[1], Expr::And(vec![255, 255, 255, 240]));
        let one = ip_in(DADDR, host(Ipv4Addr::new(198, 51, 100, 1)), CmpOp::Eq);
        assert_eq!(one[0], Expr::Payload(Base::Network, 16, 4));
    }

    #[test]
    fn a_port_table_follows_from_the_address_and_a_sandbox_table_from_what_is_asked() {
        let addr = Ipv4Addr::new(10, 44, 0, 5);
        let port = port_table("microbox0", "mbx0a2c0005", addr, [2, 0x6d, 10, 44, 0, 5]);
        assert_eq!(
            (port.family, port.name.as_str()),
            (Family::Netdev, "microbox0-0a2c0005")
        );
        assert_eq!(port.rules.len(), 5);
        let net = SandboxNet {
            id: "0123456789abcdef",
            addr,
            publish: &[],
            allow: &[],
            dns: &[],
        };
        assert_eq!(sandbox_table(&net), None);
        let publish = [Publish::parse("8080:80").unwrap()];
        let allow = [Allow::parse("198.51.100.7:443").unwrap()];
        let dns = [Ipv4Addr::new(198, 51, 100, 53)];
        let inet = sandbox_table(&SandboxNet {
            publish: &publish,
            allow: &allow,
            dns: &dns,
            ..net
        })
        .unwrap();
        assert_eq!(inet.name, "mbx-0123456789abcdef");
        // established, 2 DNS, tcp+udp for a port without protocol, reject.
        assert_eq!(
            inet.rules.iter().filter(|r| r.chain == "forward").count(),
            6
        );
        assert_eq!(
            inet.rules.iter().filter(|r| r.chain != "forward").count(),
            2
        );
    }

    #[test]
    fn table_names_come_from_a_dump_and_garbage_is_an_error() {
        let mut m = Message::new(0, 0).header(&nfgen(1, 0));
        m.attr_str(NFTA_TABLE_NAME, "mbx-abc");
        let entry = m.finish(0)[HEADER_LEN..].to_vec();
        assert_eq!(
            table_names(std::slice::from_ref(&entry)).unwrap(),
            ["mbx-abc"]
        );
        assert!(table_names(&[vec![1, 0]]).is_err());
        for cut in 0..entry.len() {
            let _ = table_names(&[entry[..cut].to_vec()]);
        }
        let mut bad = entry;
        bad[4] = 200;
        assert!(table_names(&[bad]).is_err());
    }

    /// The batches against the real kernel in a network namespace of the
    /// test's own (no traffic), read back with nft(8) and compared with
    /// `testdata/nft-*.txt` (MICROBOX_BLESS=1 rewrites them). Root only.
    #[test]
    fn the_rulesets_load_and_read_back_as_nft_says_them() {
        const NAME: &str = "net::nft::tests::the_rulesets_load_and_read_back_as_nft_says_them";
        if !std::path::Path::new("/usr/sbin/nft").exists() {
            eprintln!("skipped: needs nft(8) to read the rules back");
            return;
        }
        let Some(stdout) = crate::in_new_netns(NAME, load_and_list) else {
            return;
        };
        let listed = stdout
            .split("--- ruleset ---\n")
            .nth(1)
            .and_then(|rest| rest.split("--- end ---").next())
            .unwrap()
            .to_string();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/net/testdata/nft-ruleset.txt");
        if std::env::var_os("MICROBOX_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &listed).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            listed,
            want,
            "nft list ruleset differs from {}",
            path.display()
        );
    }

    fn load_and_list() {
        use crate::net::nlsock::{Bus, Failure, Netlink};
        let mut nl = Netlink::open(Bus::Netfilter).unwrap();
        let shared = shared_table("microbox0", Subnet::parse("10.44.0.0/24").unwrap());
        nl.exchange(batch(create(&shared, true))).unwrap();
        // A second creator is refused as a whole, with EEXIST.
        match nl.exchange(batch(create(&shared, true))) {
            Err(Failure::Refused(r)) => assert_eq!(r.errno, libc::EEXIST),
            other => panic!("second shared table: {other:?}"),
        }
        let publish = [
            Publish::parse("8080:80").unwrap(),
            Publish::parse("198.51.100.1:5353:53/udp").unwrap(),
        ];
        let allow = [
            Allow::parse("198.51.100.7:443/tcp").unwrap(),
            Allow::parse("192.0.2.0/24:1000-2000").unwrap(),
            Allow::parse("203.0.113.0/28").unwrap(),
        ];
        let dns = [Ipv4Addr::new(198, 51, 100, 53)];
        let net = SandboxNet {
            id: "0123456789abcdef",
            addr: Ipv4Addr::new(10, 44, 0, 5),
            publish: &publish,
            allow: &allow,
            dns: &dns,
        };
        // The port table's chain hooks a device, which must exist (before 6.16).
        let made = std::process::Command::new("ip")
            .args([
                "link",
                "add",
                "mbx0a2c0005",
                "type",
                "veth",
                "peer",
                "name",
                "peer0",
            ])
            .status()
            .unwrap();
        assert!(made.success(), "ip link add ... type veth");
        let port = port_table(
            "microbox0",
            "mbx0a2c0005",
            net.addr,
            [2, 0x6d, 10, 44, 0, 5],
        );
        let msgs: Vec<Message> = [port, sandbox_table(&net).unwrap()]
            .iter()
            .flat_map(|t| create(t, true))
            .collect();
        nl.exchange(batch(msgs)).unwrap();
        let answers = nl
            .answers(vec![get_chain(
                Family::Netdev,
                "microbox0-0a2c0005",
                "ingress",
            )])
            .unwrap();
        assert!(answers[0].refused.is_none() && !answers[0].data.is_empty());
        let answers = nl
            .answers(vec![get_chain(
                Family::Netdev,
                "microbox0-0a2c0006",
                "ingress",
            )])
            .unwrap();
        assert_eq!(
            answers[0].refused.as_ref().map(|r| r.errno),
            Some(libc::ENOENT)
        );
        let names = table_names(&nl.dump(list_tables(Family::Inet)).unwrap()).unwrap();
        assert_eq!(names, ["microbox0", "mbx-0123456789abcdef"]);
        let out = std::process::Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        println!(
            "--- ruleset ---\n{}--- end ---",
            String::from_utf8_lossy(&out.stdout)
        );
        // Deleting the sandbox's table leaves the shared one.
        nl.exchange(batch(vec![delete(
            Family::Inet,
            &sandbox_table_name(net.id),
        )]))
        .unwrap();
        let names = table_names(&nl.dump(list_tables(Family::Inet)).unwrap()).unwrap();
        assert_eq!(names, ["microbox0"]);
    }
}
