//! The sandbox's network. `--net none`: its own namespace with only `lo`,
//! brought up. `--net bridge`: `bridge.rs`, over netlink (`netlink.rs`
//! encodes, `nlsock.rs` talks, `rtnl.rs` and `nft.rs` say what).

pub(crate) mod addr;
mod bridge;
mod conntrack;
mod netlink;
mod nft;
mod nlsock;
mod rtnl;

pub(crate) use bridge::{cleanup, configure_inside, forget, prepare, Inside};

/// Every reader microbox applies to what the kernel sends back, over one
/// datagram of arbitrary bytes: the message framing and error/ack decoding, and
/// the route, table-name and conntrack readers on each entry. For `fuzz/` (target
/// `netlink`) and the unit test below; Err is the first malformed piece.
pub fn read_netlink_reply(datagram: &[u8]) -> std::result::Result<usize, String> {
    let replies = netlink::parse_replies(datagram).map_err(|m| m.to_string())?;
    let mut entries = Vec::new();
    for reply in &replies {
        if let netlink::Reply::Data { payload, .. } = reply {
            let _ = bridge::parse_route(payload);
            entries.push(payload.to_vec());
        }
    }
    // Every reader runs before the first error is returned.
    let flows = conntrack::flows_from(&entries, std::net::Ipv4Addr::new(10, 44, 0, 2), false);
    nft::table_names(&entries).map_err(|m| m.to_string())?;
    flows.map_err(|m| m.to_string())?;
    Ok(replies.len())
}

use std::os::fd::AsFd;

use rustix::net::{socket, AddressFamily, SocketType};

use crate::error::{Error, Result};

pub(crate) fn loopback_up() -> Result<()> {
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)
        .map_err(|e| Error::os("open a socket to configure lo", e))?;
    crate::sys::netdev::set_up(sock.as_fd(), "lo").map_err(|e| Error::os("bring up lo", e))
}

#[cfg(test)]
mod tests {
    use super::read_netlink_reply;

    /// A deterministic stand-in for the fuzz target, so every `cargo test` runs
    /// the readers over garbage: headers with plausible lengths, then noise.
    #[test]
    fn reply_readers_never_panic_on_garbage() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = usize::try_from(next() % 96).unwrap_or(0);
            let mut buf: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            if buf.len() >= 8 && next() % 2 == 0 {
                // A length that fits, a type among error/done/data.
                let fits = u32::try_from(16 + next() % 80).unwrap_or(16);
                buf[..4].copy_from_slice(&fits.to_ne_bytes());
                let kind = [2u16, 3, 24, 16][usize::try_from(next() % 4).unwrap_or(0)];
                buf[4..6].copy_from_slice(&kind.to_ne_bytes());
            }
            let _ = read_netlink_reply(&buf);
        }
        assert_eq!(read_netlink_reply(&[]), Ok(0));
        assert!(read_netlink_reply(&[1, 2, 3]).is_err());
    }
}
