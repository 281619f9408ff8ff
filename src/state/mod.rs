//! The owner of `/run/microbox` (for a user without root, a directory of
//! their own: `dir.rs`), microbox's only footprint on the host's filesystem. Everything a sandbox holds on the host is named by its id and
//! tied to its lock file, so that a run killed with SIGKILL leaves nothing the
//! next run cannot find and remove.
//!
//! Layout (a tmpfs on every systemd host, so a reboot empties it):
//!
//! | path                        | what                                          |
//! |-----------------------------|-----------------------------------------------|
//! | `sandboxes/<id>.lock`       | flock held by the live run of sandbox `<id>`  |
//! | `gc.lock`                   | held while one run collects dead sandboxes    |
//! | `ipam/<netns>-<bridge>/<addr>.lock` | the lease of a bridge address (`Lease`); `<netns>` is the network namespace's inode |
//! | `ipam/<netns>-<bridge>/last` | the address leased last, where the next search starts (a hint) |
//! | `ports/<netns>-<proto>-<port>.lock` | the lease of a published host port |
//! | `ids/<first host id>.lock`, `ids/last` | the lease of a host id range (`idrange`), and where the next search starts |
//! | `/run/microbox` itself      | each sandbox's staging tmpfs mount point, inside its own mount namespace only |
//!
//! Leases are their own flocks (a dead holder frees them by dying), unlinked
//! on release; id-range leases (id-shifted user namespaces) are the same.

mod collect;
mod dir;
mod idrange;
mod lease;
mod lock;

pub use collect::collect_dead;
pub use idrange::{
    candidates, collect_free as collect_free_id_ranges, lease_for_sandbox as lease_id_range,
    taken_ids, RANGE,
};
pub use lease::{forget_last_leased, last_leased, remember_leased, DirHold, Lease};
pub use lock::SandboxLock;

pub use dir::{ensure as ensure_run_dir, run_dir, ROOT_RUN_DIR};
