//! `--output-limit`: the command's stdout and stderr are pipes microbox
//! reads, counting, and copies to its own stdout and stderr, up to the limit.
//!
//! Driven by the supervisor's poll loop, never blocking it on the caller's
//! side: a stream with nothing pending waits for its pipe to be readable and
//! reads at most PIPE_BUF bytes; one with bytes pending waits for microbox's
//! own descriptor to be writable, and writes without blocking. A pipe, FIFO
//! or terminal is opened again through /proc/self/fd with O_NONBLOCK (a
//! description of microbox's own: the caller's flags stay as they are); a
//! socket is written with MSG_DONTWAIT; a regular file as it is. So a caller
//! that stops reading stalls the sandbox's output (as it would without the
//! limit) but not its timers and signals; after the sandbox ended, what is
//! left gets `--stop-timeout` to go out, then is dropped.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use std::time::Instant;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::net::SendFlags;
use rustix::pipe::{pipe_with, PipeFlags};

/// The most one read takes (PIPE_BUF): what a writable pipe accepts at once.
const CHUNK: usize = 4096;

struct Stream {
    /// The read end; None once it hit EOF.
    from: Option<OwnedFd>,
    to: Target,
    pending: Vec<u8>,
}

/// microbox's own stdout or stderr, as the copy writes to it.
struct Target {
    fd: OwnedFd,
    socket: bool,
}

impl Target {
    /// A writer of `ours` (1 or 2) that never blocks on a full pipe,
    /// terminal or socket.
    fn of(ours: BorrowedFd<'_>, number: i32) -> io::Result<Target> {
        let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(ours)?.st_mode);
        let socket = kind == rustix::fs::FileType::Socket;
        let fd = match kind {
            rustix::fs::FileType::Fifo | rustix::fs::FileType::CharacterDevice => {
                let again = rustix::fs::open(
                    format!("/proc/self/fd/{number}").as_str(),
                    OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
                    Mode::empty(),
                );
                match again {
                    Ok(fd) => fd,
                    // Without /proc, or a terminal that will not open again:
                    // the caller's own, made non-blocking would change theirs.
                    Err(_) => rustix::io::fcntl_dupfd_cloexec(ours, 3)?,
                }
            }
            _ => rustix::io::fcntl_dupfd_cloexec(ours, 3)?,
        };
        Ok(Target { fd, socket })
    }

    fn write(&self, bytes: &[u8]) -> rustix::io::Result<usize> {
        if self.socket {
            rustix::net::send(&self.fd, bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL)
        } else {
            rustix::io::write(&self.fd, bytes)
        }
    }
}

pub(super) struct OutputCopy {
    streams: [Stream; 2],
    limit: u64,
    /// Bytes taken from the pipes and passed on (or pending), at most `limit`.
    passed: u64,
    /// Whether the command wrote more than `limit`: the rest was cut.
    exceeded: bool,
}

/// The write ends, for the child's 1 and 2.
pub(super) type SandboxEnds = [OwnedFd; 2];

impl OutputCopy {
    pub fn new(limit: u64) -> io::Result<(OutputCopy, SandboxEnds)> {
        // Both ends close-on-exec here; the child dup2s the write ends onto
        // 1 and 2, which clears that flag on the copies.
        let (out_read, out_write) = pipe_with(PipeFlags::CLOEXEC)?;
        let (err_read, err_write) = pipe_with(PipeFlags::CLOEXEC)?;
        for read in [&out_read, &err_read] {
            rustix::io::ioctl_fionbio(read, true)?;
        }
        let stream = |from: OwnedFd, to: Target| Stream {
            from: Some(from),
            to,
            pending: Vec::with_capacity(CHUNK),
        };
        Ok((
            OutputCopy {
                streams: [
                    stream(out_read, Target::of(rustix::stdio::stdout(), 1)?),
                    stream(err_read, Target::of(rustix::stdio::stderr(), 2)?),
                ],
                limit,
                passed: 0,
                exceeded: false,
            },
            [out_write, err_write],
        ))
    }

    /// What to poll for: (stream index, descriptor, events).
    pub fn interest(&self) -> Vec<(usize, BorrowedFd<'_>, PollFlags)> {
        let mut out = Vec::with_capacity(2);
        for (index, stream) in self.streams.iter().enumerate() {
            if !stream.pending.is_empty() {
                out.push((index, stream.to.fd.as_fd(), PollFlags::OUT));
            } else if let (Some(from), false) = (&stream.from, self.exceeded) {
                out.push((index, from.as_fd(), PollFlags::IN));
            }
        }
        out
    }

    /// Acts on a poll result for stream `index`. Returns true when this read
    /// took the output past the limit (the caller kills the sandbox).
    pub fn on_ready(&mut self, index: usize, revents: PollFlags) -> bool {
        if revents.is_empty() {
            return false;
        }
        if self.streams[index].pending.is_empty() {
            self.read(index)
        } else {
            self.write(index);
            false
        }
    }

    /// After the sandbox ended: what is still in the pipes goes out, until
    /// `deadline`; what the caller has not taken by then is dropped. Only
    /// what is there already: a descriptor passed out of the sandbox could
    /// keep a pipe open for ever.
    pub fn drain(&mut self, deadline: Instant) {
        for index in 0..self.streams.len() {
            loop {
                while !self.streams[index].pending.is_empty() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let timeout = rustix::event::Timespec::try_from(left).ok();
                    let mut fds = [PollFd::new(&self.streams[index].to.fd, PollFlags::OUT)];
                    let ready = rustix::event::poll(&mut fds, timeout.as_ref()).unwrap_or(0);
                    if ready == 0 || !self.write(index) {
                        self.streams[index].pending.clear();
                        self.streams[index].from = None;
                    }
                }
                if self.streams[index].from.is_none() || self.exceeded {
                    break;
                }
                self.read(index);
                if self.streams[index].pending.is_empty() {
                    break;
                }
            }
        }
    }

    /// Bytes passed on, and whether more were cut.
    pub fn passed(&self) -> (u64, bool) {
        (self.passed, self.exceeded)
    }

    fn read(&mut self, index: usize) -> bool {
        let stream = &mut self.streams[index];
        let Some(from) = &stream.from else {
            return false;
        };
        let mut buf = [0u8; CHUNK];
        let n = match rustix::io::read(from, &mut buf) {
            Ok(0) => {
                stream.from = None;
                return false;
            }
            Ok(n) => n,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => return false,
            Err(_) => {
                stream.from = None;
                return false;
            }
        };
        let room = self.limit - self.passed;
        let taken = u64::try_from(n).unwrap_or(u64::MAX).min(room);
        // taken <= n, a usize.
        let taken_len = usize::try_from(taken).unwrap_or(n);
        stream.pending.extend_from_slice(&buf[..taken_len]);
        self.passed += taken;
        if taken_len < n && !self.exceeded {
            // Reading stops (the pipes stay open: a writer then waits, and
            // dies of microbox's kill, not of a SIGPIPE of its own).
            self.exceeded = true;
            return true;
        }
        false
    }

    /// One write of what is pending; false if the descriptor refused it for
    /// good (the caller's stdout closed: the output is dropped).
    fn write(&mut self, index: usize) -> bool {
        let stream = &mut self.streams[index];
        match stream.to.write(&stream.pending) {
            Ok(n) => {
                stream.pending.drain(..n);
                true
            }
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => true,
            Err(_) => {
                stream.pending.clear();
                false
            }
        }
    }
}
