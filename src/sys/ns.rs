//! unshare(2) for the one namespace created after the clone.

use std::io;

/// Enters a new cgroup namespace rooted at the caller's current cgroup. Done
/// after the parent moved the child into its cgroup (cgroup v1 cannot place a
/// process at clone time), so the sandbox sees its own cgroup as `/`.
pub fn unshare_cgroup() -> io::Result<()> {
    // SAFETY: CLONE_NEWCGROUP changes only the caller's cgroup namespace; it
    // shares no memory or file table state, which is what makes unshare unsafe
    // in general (rustix marks it unsafe for CLONE_FILES/CLONE_FS-like flags).
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }
        .map_err(io::Error::from)
}
