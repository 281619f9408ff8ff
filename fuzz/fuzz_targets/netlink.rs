//! Arbitrary bytes as one netlink datagram from the kernel, through every reader
//! microbox applies to replies (framing, error and extended-ack decoding, route
//! and table-name entries): an error, never a panic; and no more messages than
//! the smallest message (a 16-byte header) allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microbox::net::read_netlink_reply;

fuzz_target!(|data: &[u8]| {
    if let Ok(messages) = read_netlink_reply(data) {
        assert!(
            messages <= data.len() / 16,
            "{messages} messages in {} bytes",
            data.len()
        );
    }
});
