//! The parent/child channel: a SOCK_SEQPACKET socketpair carrying small
//! fixed-layout records. Both ends are CLOEXEC, so EOF after `Go` means every
//! holder has either exec'ed or exited.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, send, sendmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use crate::error::{Error, Kind};

/// Longest text of one error field a child sends; the rest is cut. Four
/// fields and the header fit one SEQPACKET record well below a page.
const MAX_FIELD: usize = 480;
/// tag, status, kind, errno, and four (length, text) fields.
const MAX_RECORD: usize = 1 + 4 + 1 + 4 + 4 * (2 + MAX_FIELD);

const TAG_GO: u8 = 1;
const TAG_SETUP_FAILED: u8 = 2;
const TAG_EXEC_FAILED: u8 = 3;
const TAG_STARTED: u8 = 4;
const TAG_ENDED: u8 = 5;

#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// Parent to child: the id maps are written; build the sandbox.
    Go,
    /// Child to parent: sandbox setup failed; the child exits 125.
    SetupFailed(Error),
    /// Command process to parent: execve failed; it exits with `status` (126/127).
    ExecFailed { status: i32, error: Error },
    /// Init to parent: the command is forked (its clock starts); the seccomp
    /// listener, if any, travels with it as SCM_RIGHTS.
    Started,
    /// Init to parent: the command ended with exit `code`, or was killed by
    /// `signal` (then `code` is 128 + it); init exits with `code` next.
    Ended { code: i32, signal: Option<i32> },
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

    /// Sends `msg` with `fd` attached (a copy of it reaches the other end).
    pub fn send_with_fd(&self, msg: &Message, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [fd];
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        let bytes = encode(msg);
        sendmsg(
            &self.0,
            &[IoSlice::new(&bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        Ok(())
    }

    /// Whether the other end has closed (or sent something), without waiting:
    /// for the child after Go, when the parent sends nothing more.
    pub fn peer_gone(&self) -> bool {
        let mut fds = [rustix::event::PollFd::new(
            &self.0,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(n) => n > 0,
            Err(_) => true,
        }
    }

    /// The next record, or `None` at EOF.
    pub fn recv(&self) -> io::Result<Option<Message>> {
        Ok(self.recv_with_fd()?.map(|(msg, _)| msg))
    }

    /// The next record and the descriptor that came with it, if one did
    /// (received close-on-exec), or `None` at EOF.
    pub fn recv_with_fd(&self) -> io::Result<Option<(Message, Option<OwnedFd>)>> {
        let mut buf = [0u8; MAX_RECORD];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let n = loop {
            match recvmsg(
                &self.0,
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(msg) => break msg.bytes,
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(err.into()),
            }
        };
        let mut fd = None;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                // One is ever sent; any more are closed here.
                for received in fds {
                    fd.get_or_insert(received);
                }
            }
        }
        if n == 0 {
            return Ok(None);
        }
        let msg = decode(&buf[..n.min(MAX_RECORD)]).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "malformed channel record")
        })?;
        Ok(Some((msg, fd)))
    }
}

/// A record: tag (u8), status (i32 LE), then for errors the error's fields as
/// data, never as a composed line: kind (u8), errno (i32 LE, 0 for none), and
/// op, object, detail, hint, each a u16 LE length (0xFFFF for none) and UTF-8.
fn encode(msg: &Message) -> Vec<u8> {
    let (tag, status, error) = match msg {
        Message::Go => (TAG_GO, 0, None),
        Message::SetupFailed(error) => (TAG_SETUP_FAILED, 0, Some(error)),
        Message::ExecFailed { status, error } => (TAG_EXEC_FAILED, *status, Some(error)),
        Message::Started => (TAG_STARTED, 0, None),
        Message::Ended { code, .. } => (TAG_ENDED, *code, None),
    };
    let mut out = Vec::with_capacity(MAX_RECORD);
    out.push(tag);
    out.extend_from_slice(&status.to_le_bytes());
    if let Message::Ended { signal, .. } = msg {
        out.extend_from_slice(&signal.unwrap_or(0).to_le_bytes());
    }
    if let Some(error) = error {
        out.push(match error.kind {
            Kind::Usage => 1,
            Kind::Runtime => 2,
        });
        out.extend_from_slice(&error.errno.unwrap_or(0).to_le_bytes());
        for field in [&error.op, &error.object, &error.detail, &error.hint] {
            push_field(&mut out, field.as_deref());
        }
    }
    out
}

fn push_field(out: &mut Vec<u8>, field: Option<&str>) {
    let Some(text) = field else {
        out.extend_from_slice(&u16::MAX.to_le_bytes());
        return;
    };
    let mut cut = text.len().min(MAX_FIELD);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    // MAX_FIELD < u16::MAX: exact.
    out.extend_from_slice(&u16::try_from(cut).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&text.as_bytes()[..cut]);
}

fn decode(buf: &[u8]) -> Option<Message> {
    let (&tag, rest) = buf.split_first()?;
    let status = i32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let rest = &rest[4..];
    match tag {
        TAG_GO if rest.is_empty() => Some(Message::Go),
        TAG_STARTED if rest.is_empty() => Some(Message::Started),
        TAG_ENDED if rest.len() == 4 => {
            let signal = i32::from_le_bytes(rest.try_into().ok()?);
            Some(Message::Ended {
                code: status,
                signal: (signal != 0).then_some(signal),
            })
        }
        TAG_SETUP_FAILED => Some(Message::SetupFailed(decode_error(rest)?)),
        TAG_EXEC_FAILED => Some(Message::ExecFailed {
            status,
            error: decode_error(rest)?,
        }),
        _ => None,
    }
}

fn decode_error(buf: &[u8]) -> Option<Error> {
    let (&kind, rest) = buf.split_first()?;
    let kind = match kind {
        1 => Kind::Usage,
        2 => Kind::Runtime,
        _ => return None,
    };
    let errno = i32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let mut rest = &rest[4..];
    let mut fields = [None, None, None, None];
    for field in &mut fields {
        let len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?);
        rest = &rest[2..];
        if len == u16::MAX {
            continue;
        }
        let text = rest.get(..usize::from(len))?;
        *field = Some(String::from_utf8_lossy(text).into_owned());
        rest = &rest[usize::from(len)..];
    }
    if !rest.is_empty() {
        return None;
    }
    let [op, object, detail, hint] = fields;
    Some(Error {
        kind,
        op,
        object,
        errno: (errno != 0).then_some(errno),
        detail,
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount_failed() -> Error {
        Error::os(
            "mount overlay on",
            io::Error::from_raw_os_error(libc::ENODEV),
        )
        .on("/")
    }

    #[test]
    fn records_round_trip_with_every_error_field() {
        for msg in [
            Message::Go,
            Message::SetupFailed(mount_failed()),
            Message::SetupFailed(Error::runtime("plain")),
            Message::SetupFailed(Error::failed("lock", "in use").on("/run/x").hint("wait")),
            Message::ExecFailed {
                status: 127,
                error: Error::runtime("ls: command not found"),
            },
            Message::Started,
            Message::Ended {
                code: 3,
                signal: None,
            },
            Message::Ended {
                code: 137,
                signal: Some(9),
            },
        ] {
            assert_eq!(decode(&encode(&msg)), Some(msg));
        }
        let Some(Message::SetupFailed(err)) =
            decode(&encode(&Message::SetupFailed(mount_failed())))
        else {
            panic!("not a setup failure")
        };
        assert_eq!(err.errno, Some(libc::ENODEV));
        assert_eq!(err.op.as_deref(), Some("mount overlay on"));
        assert!(err.to_string().contains("modprobe overlay"), "{err}");
    }

    #[test]
    fn long_fields_are_cut_on_a_char_boundary() {
        let msg = Message::SetupFailed(Error::runtime("é".repeat(400)).on("ü".repeat(400)));
        let bytes = encode(&msg);
        assert!(bytes.len() <= MAX_RECORD);
        let Some(Message::SetupFailed(err)) = decode(&bytes) else {
            panic!("not decoded")
        };
        assert!(err.detail.is_some_and(|s| s.chars().all(|c| c == 'é')));
        assert!(err.object.is_some_and(|s| s.chars().all(|c| c == 'ü')));
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[9, 0, 0, 0, 0]), None);
        assert_eq!(decode(&[1, 0]), None);
        assert_eq!(decode(&[1, 0, 0, 0, 0, 7]), None);
        // A setup failure cut short, and one with bytes after its fields.
        let whole = encode(&Message::SetupFailed(mount_failed()));
        assert_eq!(decode(&whole[..whole.len() - 1]), None);
        let mut longer = whole.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        // An unknown kind.
        let mut kind = whole;
        kind[5] = 9;
        assert_eq!(decode(&kind), None);
    }

    #[test]
    fn a_descriptor_travels_with_its_record() {
        let (a, b) = pair().expect("socketpair");
        let (read, _write) = rustix::pipe::pipe().expect("pipe");
        a.send_with_fd(&Message::Started, rustix::fd::AsFd::as_fd(&read))
            .expect("send");
        let (msg, fd) = b.recv_with_fd().expect("recv").expect("a record");
        assert_eq!(msg, Message::Started);
        let fd = fd.expect("a descriptor");
        let flags = rustix::io::fcntl_getfd(&fd).expect("getfd");
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        a.send(&Message::Go).expect("send");
        assert!(matches!(b.recv_with_fd(), Ok(Some((Message::Go, None)))));
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
