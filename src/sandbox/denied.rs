//! The supervisor's side of the seccomp listener: each syscall the policy
//! denies arrives here, is answered with EPERM (what the filter itself would
//! answer) and counted by name, for `--log-level warn` and the report.
//!
//! Only denied calls reach it: the filter allows everything else in the
//! kernel, as before, at no extra cost. A denied call costs a round trip
//! through microbox (about 20 us of its CPU, outside the sandbox's cgroup);
//! the caller waits for the answer meanwhile. So that a sandbox cannot make
//! microbox spin for it, at most `BUDGET` calls are answered per `WINDOW`:
//! past that the listener is not read until the window ends, and the callers
//! wait (the sandbox pays in wall time, not the host in CPU).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use crate::security::syscalls;
use crate::sys::seccomp::{self, Notification};

/// At most `BUDGET` answers per `WINDOW`: about a tenth of a core.
const BUDGET: u32 = 500;
const WINDOW: Duration = Duration::from_millis(100);

#[derive(Default)]
pub(super) struct Denials {
    listener: Option<OwnedFd>,
    /// Whether a listener ever came: without one, nothing is reported.
    heard: bool,
    /// (number, count), in the order first seen.
    counts: Vec<(i32, u64)>,
    /// The current window's start and the answers given in it.
    window: Option<(Instant, u32)>,
}

impl Denials {
    pub fn attach(&mut self, listener: OwnedFd) {
        self.listener = Some(listener);
        self.heard = true;
    }

    /// The listener to poll, unless this window's budget is spent.
    pub fn fd(&self, now: Instant) -> Option<BorrowedFd<'_>> {
        if self.resumes_at(now).is_some() {
            return None;
        }
        self.listener.as_ref().map(AsFd::as_fd)
    }

    /// When a spent budget is renewed, if it is spent now.
    pub fn resumes_at(&self, now: Instant) -> Option<Instant> {
        let (start, answered) = self.window?;
        (answered >= BUDGET && now < start + WINDOW && self.listener.is_some())
            .then_some(start + WINDOW)
    }

    /// One poll result of the listener: answers one notification, or lets
    /// the listener go once no process of the sandbox can call any more.
    pub fn on_ready(&mut self, revents: PollFlags) {
        let Some(listener) = &self.listener else {
            return;
        };
        if revents.contains(PollFlags::IN) {
            // An error is ENOENT: the caller died between poll and receive.
            if let Ok(notification) = seccomp::receive(listener.as_fd()) {
                // ENOENT here too: it died meanwhile, and nobody waits.
                let _ = seccomp::fail(listener.as_fd(), notification.id, libc::EPERM);
                self.count(notification);
                let now = Instant::now();
                self.window = match self.window {
                    Some((start, answered)) if now < start + WINDOW => Some((start, answered + 1)),
                    _ => Some((now, 1)),
                };
            }
        } else if revents.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
            self.listener = None;
        }
    }

    fn count(&mut self, notification: Notification) {
        match self
            .counts
            .iter_mut()
            .find(|(nr, _)| *nr == notification.nr)
        {
            Some((_, count)) => *count += 1,
            None => {
                self.counts.push((notification.nr, 1));
                crate::log::warn(
                    &format!(
                        "the sandbox called {}, which the seccomp policy denies (answered EPERM)",
                        name(notification.nr)
                    ),
                    &[("syscall", &name(notification.nr))],
                );
            }
        }
    }

    /// Whether denials were heard at all (the report says null otherwise).
    pub fn reported(&self) -> bool {
        self.heard
    }

    pub fn by_name(&self) -> Vec<(String, u64)> {
        self.counts
            .iter()
            .map(|&(nr, count)| (name(nr), count))
            .collect()
    }
}

/// The syscall's name, or `syscall_N` for one the table does not name (x32
/// calls never come here: the x32 guard of the first program answers them).
fn name(nr: i32) -> String {
    match u32::try_from(nr).ok().and_then(syscalls::name) {
        Some(name) => name.to_string(),
        None => format!("syscall_{nr}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_named_by_the_native_table() {
        let ptrace = i32::try_from(syscalls::number("ptrace").expect("ptrace")).expect("small");
        assert_eq!(name(ptrace), "ptrace");
        assert_eq!(name(100_000), "syscall_100000");
        assert_eq!(name(-1), "syscall_-1");
    }
}
