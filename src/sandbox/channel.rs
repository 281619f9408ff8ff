//! The parent/child channel: a SOCK_SEQPACKET socketpair carrying small
//! fixed-layout records. Both ends are CLOEXEC, so EOF after `Go` means every
//! holder has either exec'ed or exited.

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::{
    recv, send, socketpair, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};

/// Longest error text a child sends; the rest is cut.
const MAX_DETAIL: usize = 480;

const TAG_GO: u8 = 1;
const TAG_SETUP_FAILED: u8 = 2;
const TAG_EXEC_FAILED: u8 = 3;

#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// Parent to child: the id maps are written; build the sandbox.
    Go,
    /// Child to parent: sandbox setup failed; the child exits 125.
    SetupFailed(String),
    /// Command process to parent: execve failed; it exits with `status` (126/127).
    ExecFailed { status: i32, detail: String },
}

pub struct Channel(OwnedFd);

/// A connected pair: (parent end, child end).
pub fn pair() -> io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn fd(&self) -> &OwnedFd {
        &self.0
    }

    pub fn send(&self, msg: &Message) -> io::Result<()> {
        send(&self.0, &encode(msg), SendFlags::NOSIGNAL)?;
        Ok(())
    }

    /// The next record, or `None` at EOF.
    pub fn recv(&self) -> io::Result<Option<Message>> {
        let mut buf = [0u8; 1 + 4 + MAX_DETAIL];
        let n = loop {
            match recv(&self.0, &mut buf, RecvFlags::empty()) {
                Ok((n, _)) => break n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(err.into()),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        decode(&buf[..n])
            .map(Some)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed channel record"))
    }
}

fn encode(msg: &Message) -> Vec<u8> {
    let (tag, status, detail) = match msg {
        Message::Go => (TAG_GO, 0, ""),
        Message::SetupFailed(detail) => (TAG_SETUP_FAILED, 0, detail.as_str()),
        Message::ExecFailed { status, detail } => (TAG_EXEC_FAILED, *status, detail.as_str()),
    };
    let mut out = Vec::with_capacity(5 + detail.len().min(MAX_DETAIL));
    out.push(tag);
    out.extend_from_slice(&status.to_le_bytes());
    let mut cut = detail.len().min(MAX_DETAIL);
    while !detail.is_char_boundary(cut) {
        cut -= 1;
    }
    out.extend_from_slice(&detail.as_bytes()[..cut]);
    out
}

fn decode(buf: &[u8]) -> Option<Message> {
    let (&tag, rest) = buf.split_first()?;
    let status = i32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let detail = String::from_utf8_lossy(&rest[4..]).into_owned();
    match tag {
        TAG_GO => Some(Message::Go),
        TAG_SETUP_FAILED => Some(Message::SetupFailed(detail)),
        TAG_EXEC_FAILED => Some(Message::ExecFailed { status, detail }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        for msg in [
            Message::Go,
            Message::SetupFailed("cannot mount overlay on /: No such device".into()),
            Message::ExecFailed {
                status: 127,
                detail: "not found".into(),
            },
        ] {
            assert_eq!(decode(&encode(&msg)), Some(msg));
        }
    }

    #[test]
    fn long_detail_is_cut_on_a_char_boundary() {
        let msg = Message::SetupFailed("é".repeat(400));
        let bytes = encode(&msg);
        assert!(bytes.len() <= 5 + MAX_DETAIL);
        assert!(
            matches!(decode(&bytes), Some(Message::SetupFailed(s)) if s.chars().all(|c| c == 'é'))
        );
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[9, 0, 0, 0, 0]), None);
        assert_eq!(decode(&[1, 0]), None);
    }

    #[test]
    fn pair_carries_records_and_eof() {
        let (a, b) = pair().expect("socketpair");
        a.send(&Message::Go).expect("send");
        assert_eq!(b.recv().expect("recv"), Some(Message::Go));
        drop(a);
        assert_eq!(b.recv().expect("recv"), None);
    }
}
