//! Netlink messages as bytes: a builder for requests (header, family header,
//! attributes, nests) and a parser for replies that never panics on what the
//! kernel (or a fuzzer) sends. Pure: no sockets here (see `nlsock.rs`).
//!
//! Layouts are from `<linux/netlink.h>`: a 16-byte `nlmsghdr` (len, type,
//! flags, seq, pid; host byte order), then the payload; attributes are
//! `nlattr` (len u16, type u16) with their payload padded to 4 bytes.

/// `NLMSG_ERROR`: an ack (error 0) or a failure (negative errno).
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a multi-part dump.
pub const NLMSG_DONE: u16 = 3;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_ROOT: u16 = 0x100;
pub const NLM_F_MATCH: u16 = 0x200;
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
/// In an `NLMSG_ERROR`: the echoed request was cut to its header.
const NLM_F_CAPPED: u16 = 0x100;
/// In an `NLMSG_ERROR`: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;

/// Extended-ack attributes (`enum nlmsgerr_attrs`).
const NLMSGERR_ATTR_MSG: u16 = 1;

/// `NLA_F_NESTED`, set on nests (nf_tables checks it; rtnetlink ignores it).
pub const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const HEADER_LEN: usize = 16;
const ATTR_HEADER_LEN: usize = 4;

/// Rounds up to the 4-byte netlink alignment.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// One request being built. Lengths are filled in by `nest_end` and `finish`.
#[derive(Debug, Clone)]
pub struct Message {
    buf: Vec<u8>,
}

impl Message {
    /// A request of `msg_type` with `flags` (`NLM_F_REQUEST` is always added).
    pub fn new(msg_type: u16, flags: u16) -> Message {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq, set by `finish`
        buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel's own
        Message { buf }
    }

    /// The same request with `flags` added (NLM_F_ACK on a GET, so the kernel
    /// confirms after answering).
    pub fn with_flags(mut self, flags: u16) -> Message {
        let now = u16::from_ne_bytes([self.buf[6], self.buf[7]]);
        self.buf[6..8].copy_from_slice(&(now | flags).to_ne_bytes());
        self
    }

    /// The family header (`ifinfomsg`, `ifaddrmsg`, `rtmsg`, `nfgenmsg`), as bytes,
    /// padded to alignment.
    pub fn header(mut self, bytes: &[u8]) -> Message {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    /// Bytes that are not an attribute, padded: a family header inside a nest
    /// (a veth peer's ifinfomsg).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Message {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    pub fn attr(&mut self, attr_type: u16, payload: &[u8]) -> &mut Message {
        let len = ATTR_HEADER_LEN + payload.len();
        self.buf.extend_from_slice(&len16(len).to_ne_bytes());
        self.buf.extend_from_slice(&attr_type.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    pub fn attr_u8(&mut self, attr_type: u16, value: u8) -> &mut Message {
        self.attr(attr_type, &[value])
    }

    pub fn attr_u32(&mut self, attr_type: u16, value: u32) -> &mut Message {
        self.attr(attr_type, &value.to_ne_bytes())
    }

    /// A big-endian u32 (nf_tables' NFTA_* numbers are network order).
    pub fn attr_be32(&mut self, attr_type: u16, value: u32) -> &mut Message {
        self.attr(attr_type, &value.to_be_bytes())
    }

    /// A NUL-terminated string.
    pub fn attr_str(&mut self, attr_type: u16, value: &str) -> &mut Message {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.attr(attr_type, &bytes)
    }

    /// Opens a nest; returns where it starts, for [`Message::nest_end`].
    pub fn nest_start(&mut self, attr_type: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(attr_type | NLA_F_NESTED).to_ne_bytes());
        at
    }

    pub fn nest_end(&mut self, at: usize) -> &mut Message {
        let len = len16(self.buf.len() - at);
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    /// A nest holding what `fill` adds.
    pub fn nest(&mut self, attr_type: u16, fill: impl FnOnce(&mut Message)) -> &mut Message {
        let at = self.nest_start(attr_type);
        fill(self);
        self.nest_end(at)
    }

    /// The finished bytes with sequence number `seq`.
    pub fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }

    fn pad(&mut self) {
        self.buf.resize(align(self.buf.len()), 0);
    }
}

/// Attribute and message lengths are u16/u32 on the wire; microbox's requests
/// are a few hundred bytes, so a longer one is a bug, made visible as a
/// length the kernel rejects rather than a silent wrap.
fn len16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// One message of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The request `seq` succeeded.
    Ack { seq: u32 },
    /// The request `seq` failed with `errno`; `message` is the kernel's
    /// extended-ack text, when it sent one.
    Failed {
        seq: u32,
        errno: i32,
        message: Option<String>,
    },
    /// The end of a dump.
    Done { seq: u32 },
    /// Anything else: a dump entry or a notification.
    Data {
        msg_type: u16,
        flags: u16,
        seq: u32,
        payload: &'a [u8],
    },
}

/// What is wrong with bytes that should have been netlink messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed netlink reply: {}", self.0)
    }
}

/// Every message in one datagram from the kernel.
pub fn parse_replies(mut buf: &[u8]) -> Result<Vec<Reply<'_>>, Malformed> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let header = buf.get(..HEADER_LEN).ok_or(Malformed("short header"))?;
        let len = usize::try_from(u32_at(header, 0)).map_err(|_| Malformed("length"))?;
        if len < HEADER_LEN || len > buf.len() {
            return Err(Malformed("message length out of range"));
        }
        let msg_type = u16_at(header, 4);
        let flags = u16_at(header, 6);
        let seq = u32_at(header, 8);
        let payload = &buf[HEADER_LEN..len];
        out.push(match msg_type {
            NLMSG_ERROR => parse_error(seq, flags, payload)?,
            NLMSG_DONE => Reply::Done { seq },
            _ => Reply::Data {
                msg_type,
                flags,
                seq,
                payload,
            },
        });
        buf = buf.get(align(len)..).unwrap_or(&[]);
    }
    Ok(out)
}

/// `struct nlmsgerr`: the error, the echoed request's header (and its payload
/// unless capped), then extended-ack attributes if flagged.
fn parse_error(seq: u32, flags: u16, payload: &[u8]) -> Result<Reply<'_>, Malformed> {
    let code = payload.get(..4).ok_or(Malformed("short error"))?;
    let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
    if code == 0 {
        return Ok(Reply::Ack { seq });
    }
    let errno = code
        .checked_neg()
        .filter(|e| *e > 0)
        .ok_or(Malformed("errno"))?;
    let echoed = payload
        .get(4..4 + HEADER_LEN)
        .ok_or(Malformed("short echo"))?;
    let echoed_len = if flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        usize::try_from(u32_at(echoed, 0)).map_err(|_| Malformed("echo length"))?
    };
    let mut message = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        let tlvs = payload
            .get(4 + align(echoed_len)..)
            .ok_or(Malformed("extended ack out of range"))?;
        for attr in attrs(tlvs) {
            let (attr_type, value) = attr?;
            if attr_type == NLMSGERR_ATTR_MSG {
                message = Some(c_string(value));
            }
        }
    }
    Ok(Reply::Failed {
        seq,
        errno,
        message,
    })
}

/// The attributes in `buf`, each as (type without flag bits, payload).
pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(header) = self.rest.get(..ATTR_HEADER_LEN) else {
            self.rest = &[];
            return Some(Err(Malformed("short attribute header")));
        };
        let len = usize::from(u16_at(header, 0));
        let attr_type = u16_at(header, 2) & NLA_TYPE_MASK;
        if len < ATTR_HEADER_LEN || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(Malformed("attribute length out of range")));
        }
        let value = &self.rest[ATTR_HEADER_LEN..len];
        self.rest = self.rest.get(align(len)..).unwrap_or(&[]);
        Some(Ok((attr_type, value)))
    }
}

/// A string attribute, without its NUL and anything after it.
pub fn c_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn a_request_has_its_length_seq_and_padded_attributes() {
        let mut msg = Message::new(16, NLM_F_ACK).header(&[0u8; 3]);
        msg.attr_str(3, "eth0").attr_u32(4, 1500);
        let bytes = msg.finish(7);
        // header 16 + family header 3 padded to 4 + "eth0\0" (4+5 -> 12) + u32 (8)
        assert_eq!(bytes.len(), 16 + 4 + 12 + 8);
        assert_eq!(usize::try_from(u32_at(&bytes, 0)).unwrap(), bytes.len());
        assert_eq!(u16_at(&bytes, 4), 16);
        assert_eq!(u16_at(&bytes, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32_at(&bytes, 8), 7);
        assert_eq!(&bytes[20..32], b"\x09\x00\x03\x00eth0\x00\x00\x00\x00");
        let parsed: Vec<_> = attrs(&bytes[20..]).map(Result::unwrap).collect();
        assert_eq!(
            parsed,
            [(3, &b"eth0\0"[..]), (4, &1500u32.to_ne_bytes()[..])]
        );
    }

    #[test]
    fn a_nest_covers_what_it_holds_and_is_flagged() {
        let mut msg = Message::new(16, 0);
        msg.nest(18, |m| {
            m.attr_str(1, "veth");
        });
        let bytes = msg.finish(1);
        let nest = &bytes[HEADER_LEN..];
        assert_eq!(usize::from(u16_at(nest, 0)), 4 + 12);
        assert_eq!(u16_at(nest, 2), 18 | NLA_F_NESTED);
        let (kind, inner) = attrs(nest).next().unwrap().unwrap();
        assert_eq!(kind, 18);
        assert_eq!(attrs(inner).next().unwrap().unwrap(), (1, &b"veth\0"[..]));
    }

    fn error_reply(seq: u32, code: i32, flags: u16, tail: &[u8]) -> Vec<u8> {
        let echoed = Message::new(16, 0).finish(seq);
        let mut payload = code.to_ne_bytes().to_vec();
        payload.extend_from_slice(&echoed);
        payload.extend_from_slice(tail);
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(16 + payload.len()).unwrap().to_ne_bytes());
        out.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&payload);
        out
    }

    #[test]
    fn acks_errors_and_extended_ack_text_are_read() {
        let mut tlv = Message::new(0, 0);
        tlv.attr_str(NLMSGERR_ATTR_MSG, "Invalid prefix for given prefix length");
        let tlv = tlv.finish(0)[HEADER_LEN..].to_vec();
        let mut buf = error_reply(1, 0, NLM_F_CAPPED, &[]);
        buf.extend(error_reply(
            2,
            -libc::EEXIST,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            &tlv,
        ));
        buf.extend(error_reply(3, -libc::EPERM, 0, &[]));
        assert_eq!(
            parse_replies(&buf).unwrap(),
            [
                Reply::Ack { seq: 1 },
                Reply::Failed {
                    seq: 2,
                    errno: libc::EEXIST,
                    message: Some("Invalid prefix for given prefix length".into()),
                },
                Reply::Failed {
                    seq: 3,
                    errno: libc::EPERM,
                    message: None,
                },
            ]
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let good = error_reply(1, -libc::ENOENT, 0, &[]);
        // Every truncation, and every corrupted length byte.
        for cut in 0..good.len() {
            let _ = parse_replies(&good[..cut]);
        }
        assert!(parse_replies(&good[..10]).is_err());
        for at in [0, 1, 20, 21] {
            for value in [0u8, 3, 15, 0xff] {
                let mut bad = good.clone();
                bad[at] = value;
                let _ = parse_replies(&bad);
            }
        }
        let mut wrong_len = good.clone();
        wrong_len[0] = 200;
        assert_eq!(
            parse_replies(&wrong_len),
            Err(Malformed("message length out of range"))
        );
        // Positive "errno" values are not errnos.
        assert!(parse_replies(&error_reply(1, 5, 0, &[])).is_err());
        // Attributes whose length runs past the buffer, or is below the header.
        assert!(attrs(&[8, 0, 1, 0, 0]).next().unwrap().is_err());
        assert!(attrs(&[2, 0, 1, 0]).next().unwrap().is_err());
        assert!(attrs(&[1, 0]).next().unwrap().is_err());
    }
}
