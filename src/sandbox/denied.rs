//! The supervisor's side of the seccomp listener: each syscall the policy
//! denies arrives here, is answered with EPERM (what the filter itself would
//! answer) and counted by name, for `--log-level warn` and the report.
//!
//! Only denied calls reach it: the filter allows everything else in the
//! kernel, as before, at no extra cost. A denied call costs a round trip
//! through microbox (a few microseconds of its CPU, outside the sandbox's
//! cgroup); the caller waits for the answer meanwhile.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::PollFlags;

use crate::security::syscalls;
use crate::sys::seccomp::{self, Notification};

/// Set on x32 syscall numbers (`__X32_SYSCALL_BIT`).
const X32_BIT: i32 = 0x4000_0000;

#[derive(Default)]
pub(super) struct Denials {
    listener: Option<OwnedFd>,
    /// Whether a listener ever came: without one, nothing is reported.
    heard: bool,
    /// (number, count), in the order first seen.
    counts: Vec<(i32, u64)>,
}

impl Denials {
    pub fn attach(&mut self, listener: OwnedFd) {
        self.listener = Some(listener);
        self.heard = true;
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.listener.as_ref().map(AsFd::as_fd)
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

/// The syscall's name; an x32 call as `x32:N` (x32 numbers its calls
/// differently), one the table does not name as `syscall_N`.
fn name(nr: i32) -> String {
    if nr > 0 && nr & X32_BIT != 0 {
        return format!("x32:{}", nr & !X32_BIT);
    }
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
        assert_eq!(name(521 | X32_BIT), "x32:521");
        assert_eq!(name(100_000), "syscall_100000");
        assert_eq!(name(-1), "syscall_-1");
    }
}
