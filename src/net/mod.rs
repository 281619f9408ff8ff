//! The sandbox's network. `--net none`: its own namespace with only `lo`,
//! brought up. `--net bridge`: `bridge.rs`, over netlink (`netlink.rs`
//! encodes, `nlsock.rs` talks, `rtnl.rs` and `nft.rs` say what).

pub(crate) mod addr;
mod bridge;
mod netlink;
mod nft;
mod nlsock;
mod rtnl;

pub(crate) use bridge::{cleanup, configure_inside, forget, prepare, Inside};

use std::os::fd::AsFd;

use rustix::net::{socket, AddressFamily, SocketType};

use crate::error::{Error, Result};

pub fn loopback_up() -> Result<()> {
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)
        .map_err(|e| Error::os("open a socket to configure lo", e))?;
    crate::sys::netdev::set_up(sock.as_fd(), "lo").map_err(|e| Error::os("bring up lo", e))
}
