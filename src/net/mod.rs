//! Networking inside the sandbox's own network namespace. `--net none`: only
//! `lo`, brought up. Bridge mode comes with its own issue.

#[allow(dead_code)] // the executor lands next
pub(crate) mod addr;
// Bridge mode is being built on these; until it lands, parts are used only by tests.
#[allow(dead_code)]
mod bridge;
#[allow(dead_code)]
mod netlink;
#[allow(dead_code)]
mod nlsock;
#[allow(dead_code)]
mod rtnl;

use std::os::fd::AsFd;

use rustix::net::{socket, AddressFamily, SocketType};

use crate::error::{Error, Result};

pub fn loopback_up() -> Result<()> {
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)
        .map_err(|e| Error::os("open a socket to configure lo", e))?;
    crate::sys::netdev::set_up(sock.as_fd(), "lo").map_err(|e| Error::os("bring up lo", e))
}
