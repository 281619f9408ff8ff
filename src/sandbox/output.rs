//! `--output-limit`: the command's stdout and stderr are pipes microbox
//! reads, counting, and copies to its own stdout and stderr, up to the limit.
//!
//! Driven by the supervisor's poll loop, never blocking it on the caller's
//! side: a stream with nothing pending waits for its pipe to be readable and
//! reads at most PIPE_BUF bytes; one with bytes pending waits for microbox's
//! own descriptor to be writable, where a pipe then takes PIPE_BUF bytes
//! without blocking. So a caller that stops reading stalls the sandbox's
//! output (as it would without the limit) but not its timers and signals.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{PollFd, PollFlags};
use rustix::pipe::{pipe_with, PipeFlags};

/// The most one read takes (PIPE_BUF): what a writable pipe accepts at once.
const CHUNK: usize = 4096;

struct Stream {
    /// The read end; None once it hit EOF, or the limit was reached.
    from: Option<OwnedFd>,
    /// 1 or 2: microbox's own.
    to: BorrowedFd<'static>,
    pending: Vec<u8>,
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
        let stream = |from: OwnedFd, to: BorrowedFd<'static>| Stream {
            from: Some(from),
            to,
            pending: Vec::with_capacity(CHUNK),
        };
        Ok((
            OutputCopy {
                streams: [
                    stream(out_read, rustix::stdio::stdout()),
                    stream(err_read, rustix::stdio::stderr()),
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
                out.push((index, stream.to, PollFlags::OUT));
            } else if let Some(from) = &stream.from {
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

    /// After the sandbox ended: what is still in the pipes goes out, now
    /// waiting for the caller to take it. Only what is there already: a
    /// descriptor passed out of the sandbox could keep a pipe open for ever.
    pub fn drain(&mut self) {
        for index in 0..self.streams.len() {
            loop {
                while !self.streams[index].pending.is_empty() {
                    // Waits here rather than spinning when the caller's
                    // descriptor is non-blocking and full.
                    let mut fds = [PollFd::from_borrowed_fd(
                        self.streams[index].to,
                        PollFlags::OUT,
                    )];
                    let _ = rustix::event::poll(&mut fds, None);
                    if !self.write(index) {
                        self.streams[index].pending.clear();
                    }
                }
                if self.streams[index].from.is_none() {
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
            self.exceeded = true;
            // Stop reading: the sandbox is killed; what it writes now is cut.
            for stream in &mut self.streams {
                stream.from = None;
            }
            return true;
        }
        false
    }

    /// One write of what is pending; false if the descriptor refused it for
    /// good (the caller's stdout closed: the output is dropped).
    fn write(&mut self, index: usize) -> bool {
        let stream = &mut self.streams[index];
        match rustix::io::write(stream.to, &stream.pending) {
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
