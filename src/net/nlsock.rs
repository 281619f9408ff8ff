//! A netlink socket that sends requests and waits for the kernel's answer to
//! each: one `sendto` for a whole batch, then acks read until every request
//! that asked for one is answered. No threads, no async: the kernel answers a
//! request before `sendto` returns or shortly after, and a receive timeout
//! bounds a kernel that never does.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{
    recv, sendto, socket_with, sockopt, AddressFamily, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};

use super::netlink::{parse_replies, Message, Reply, HEADER_LEN, NLM_F_ACK};
use crate::error::Error;

/// A reply buffer as large as the kernel's largest netlink datagram by default
/// (it sizes them to a page, up to 32 KiB for dumps).
const RECV_BUF: usize = 64 * 1024;
/// How long one request may go unanswered before microbox gives up on it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Which netlink family a socket talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// rtnetlink: links, addresses, routes.
    Route,
    /// nfnetlink: nf_tables.
    Netfilter,
}

pub struct Netlink {
    fd: OwnedFd,
    next_seq: u32,
}

/// What the kernel said to one request of a batch.
#[derive(Debug)]
pub struct Refused {
    pub errno: i32,
    /// The kernel's extended-ack text, if it gave one.
    pub message: Option<String>,
}

impl Refused {
    /// The user's error line: `cannot <op> <object>: <strerror>: <kernel's text>`.
    pub fn into_error(self, op: &str, object: impl std::fmt::Display) -> Error {
        let err = Error::os(op, std::io::Error::from_raw_os_error(self.errno)).on(object);
        match self.message {
            Some(text) if !text.is_empty() => err.detail(text),
            _ => err,
        }
    }
}

/// What the kernel answered to one request of [`Netlink::answers`].
#[derive(Debug, Default)]
pub struct Answer {
    /// The payloads (after the netlink header) of the messages it sent back.
    pub data: Vec<Vec<u8>>,
    pub refused: Option<Refused>,
    done: bool,
}

/// A failed exchange: the socket itself failed, or the kernel refused a request.
#[derive(Debug)]
pub enum Failure {
    Io(std::io::Error),
    Refused(Refused),
    Malformed(&'static str),
}

impl Failure {
    pub fn into_error(self, op: &str, object: impl std::fmt::Display) -> Error {
        match self {
            Failure::Io(err) => Error::os(op, err).on(object),
            Failure::Refused(refused) => refused.into_error(op, object),
            Failure::Malformed(what) => {
                Error::failed(op, format!("malformed netlink reply: {what}")).on(object)
            }
        }
    }
}

impl From<rustix::io::Errno> for Failure {
    fn from(err: rustix::io::Errno) -> Self {
        Failure::Io(err.into())
    }
}

impl Netlink {
    /// A socket of `bus` in the caller's network namespace.
    pub fn open(bus: Bus) -> std::result::Result<Netlink, Failure> {
        let protocol = match bus {
            // NETLINK_ROUTE is protocol 0, the default, which rustix spells None.
            Bus::Route => None,
            Bus::Netfilter => Some(netlink::NETFILTER),
        };
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            protocol,
        )?;
        crate::sys::netlink::enable_ext_ack(fd.as_fd()).map_err(Failure::Io)?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(ANSWER_TIMEOUT))?;
        Ok(Netlink { fd, next_seq: 1 })
    }

    /// Sends `requests` in one datagram and waits for every ack they asked for.
    /// The first refusal is returned (for an nf_tables batch the kernel applies
    /// none of it then); dump entries and notifications are ignored.
    pub fn exchange(&mut self, requests: Vec<Message>) -> std::result::Result<(), Failure> {
        let first = self
            .answers(requests)?
            .into_iter()
            .find_map(|answer| answer.refused);
        first.map_or(Ok(()), |r| Err(Failure::Refused(r)))
    }

    /// Sends `requests` in one datagram and returns, per request, what the
    /// kernel answered: the messages it sent back for it (a GET's answer) and
    /// whether it refused it. Waits for the ack of each request that asked for
    /// one (NLM_F_ACK); the kernel sends a GET's answer before its ack.
    pub fn answers(&mut self, requests: Vec<Message>) -> std::result::Result<Vec<Answer>, Failure> {
        let mut datagram = Vec::new();
        let mut seqs = Vec::new();
        let mut waiting = 0usize;
        for request in requests {
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            let bytes = request.finish(seq);
            let acked = flags_of(&bytes) & NLM_F_ACK != 0;
            waiting += usize::from(acked);
            seqs.push((seq, acked));
            datagram.extend_from_slice(&bytes);
        }
        let mut answers: Vec<Answer> = seqs.iter().map(|_| Answer::default()).collect();
        sendto(
            &self.fd,
            &datagram,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        let mut buf = vec![0u8; RECV_BUF];
        while waiting > 0 {
            let (n, _) = recv(&self.fd, &mut buf[..], RecvFlags::empty())?;
            for reply in parse_replies(&buf[..n]).map_err(|m| Failure::Malformed(m.0))? {
                let seq = match &reply {
                    Reply::Ack { seq }
                    | Reply::Failed { seq, .. }
                    | Reply::Done { seq }
                    | Reply::Data { seq, .. } => *seq,
                };
                let Some(index) = seqs.iter().position(|(s, _)| *s == seq) else {
                    continue;
                };
                let answer = &mut answers[index];
                match reply {
                    Reply::Data { payload, .. } => answer.data.push(payload.to_vec()),
                    Reply::Done { .. } => {}
                    Reply::Ack { .. } | Reply::Failed { .. } if answer.done => {}
                    Reply::Ack { .. } => {
                        answer.done = true;
                        waiting -= usize::from(seqs[index].1);
                    }
                    Reply::Failed { errno, message, .. } => {
                        answer.done = true;
                        answer.refused = Some(Refused { errno, message });
                        waiting -= usize::from(seqs[index].1);
                    }
                }
            }
        }
        Ok(answers)
    }

    /// Sends a dump request and returns each entry's payload (after the
    /// netlink header) until the kernel says done.
    pub fn dump(&mut self, request: Message) -> std::result::Result<Vec<Vec<u8>>, Failure> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        sendto(
            &self.fd,
            &request.finish(seq),
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        let mut buf = vec![0u8; RECV_BUF];
        let mut entries = Vec::new();
        loop {
            let (n, _) = recv(&self.fd, &mut buf[..], RecvFlags::empty())?;
            for reply in parse_replies(&buf[..n]).map_err(|m| Failure::Malformed(m.0))? {
                match reply {
                    Reply::Data {
                        seq: s, payload, ..
                    } if s == seq => entries.push(payload.to_vec()),
                    Reply::Done { seq: s } if s == seq => return Ok(entries),
                    Reply::Failed {
                        seq: s,
                        errno,
                        message,
                    } if s == seq => return Err(Failure::Refused(Refused { errno, message })),
                    _ => {}
                }
            }
        }
    }
}

fn flags_of(bytes: &[u8]) -> u16 {
    if bytes.len() < HEADER_LEN {
        return 0;
    }
    u16::from_ne_bytes([bytes[6], bytes[7]])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;
    use crate::net::netlink::NLM_F_DUMP;

    /// RTM_GETLINK dump in the test's own namespace: needs no privilege, and
    /// every namespace has `lo`.
    #[test]
    fn a_link_dump_lists_lo() {
        let mut nl = Netlink::open(Bus::Route).unwrap();
        let request = Message::new(libc::RTM_GETLINK, NLM_F_DUMP).header(&[0u8; 16]);
        let entries = nl.dump(request).unwrap();
        assert!(!entries.is_empty());
    }

    #[test]
    fn a_refusal_carries_the_errno_and_the_kernels_text() {
        let mut nl = Netlink::open(Bus::Route).unwrap();
        // RTM_DELLINK of interface index 0x7fff_fff0, which does not exist.
        let mut ifinfo = [0u8; 16];
        ifinfo[4..8].copy_from_slice(&0x7fff_fff0i32.to_ne_bytes());
        let request = Message::new(libc::RTM_DELLINK, NLM_F_ACK).header(&ifinfo);
        let Err(Failure::Refused(refused)) = nl.exchange(vec![request]) else {
            panic!("deleting a missing link succeeded")
        };
        // ENODEV as root; EPERM without CAP_NET_ADMIN: both are real errnos.
        assert!(
            [libc::ENODEV, libc::EPERM].contains(&refused.errno),
            "{refused:?}"
        );
        let err = refused.into_error("delete link", "#2147483632").to_string();
        assert!(err.starts_with("cannot delete link #2147483632: "), "{err}");
    }
}
