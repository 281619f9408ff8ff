//! The owner of `/run/microbox`, microbox's only footprint on the host's
//! filesystem. Everything a sandbox holds on the host is named by its id and
//! tied to its lock file, so that a run killed with SIGKILL leaves nothing the
//! next run cannot find and remove.
//!
//! Layout (a tmpfs on every systemd host, so a reboot empties it):
//!
//! | path                        | what                                          |
//! |-----------------------------|-----------------------------------------------|
//! | `sandboxes/<id>.lock`       | flock held by the live run of sandbox `<id>`  |
//! | `gc.lock`                   | held while one run collects dead sandboxes    |
//! | `/run/microbox` itself      | each sandbox's staging tmpfs mount point, inside its own mount namespace only |
//!
//! Address and id-range leases (bridge networking, id-shifted user namespaces)
//! go here as `leases/...`, tied to the same lock: a lease whose sandbox lock
//! can be taken belongs to a dead run.

mod collect;
mod lock;

pub use collect::collect_dead;
pub use lock::SandboxLock;

/// The directory this module owns.
pub const RUN_DIR: &str = "/run/microbox";
