//! The sandbox's filesystem, built inside the child's own mount namespace:
//! a new root (tmpfs, or an overlay of the image over a tmpfs), /proc, /dev,
//! /etc files and the user's bind mounts, then pivot_root into it.
//!
//! Plan, then execute: `plan` turns the Spec into a list of steps (plain data,
//! unit-tested without root), `apply` runs them with the new mount API. Paths
//! that come from the image or the user are resolved with `resolve` (never
//! leaving the root); every step finds its target below an fd.

mod apply;
mod bind;
pub mod container;
pub use bind::{
    host_owner, open_source, prepare as prepare_bind, reserved_destination,
    Prepared as PreparedBind,
};
mod dev;
mod etc;
mod idmap;
pub use idmap::{clone_image, idmap};
pub mod plan;
mod proc;
pub mod resolve;

use std::os::fd::BorrowedFd;

use crate::error::Result;
use crate::spec::Spec;

/// Runs an OCI container's mount plan (`container::plan`) with its root
/// tree and bind trees.
pub fn setup_container(
    steps: &[plan::Step],
    root: BorrowedFd<'_>,
    binds: &[bind::Prepared],
) -> Result<()> {
    apply::apply(
        steps,
        apply::Inputs {
            image: Some(root),
            binds,
        },
    )
}

/// Builds the whole filesystem and enters it (cwd `/`). `image` is the image
/// directory's tree and `binds` the user's bind mounts (in the order of
/// `spec.mounts`), cloned by the supervisor before the clone.
pub fn setup(
    spec: &Spec,
    hostname: &str,
    image: Option<BorrowedFd<'_>>,
    binds: &[bind::Prepared],
    tty_group: bool,
) -> Result<()> {
    let mut steps = plan::plan(spec, hostname);
    if !tty_group {
        // A rootless sandbox with the user's own ids alone has no group 5
        // (tty), and devpts refuses an unmapped gid: its ptys get the
        // opener's group instead.
        for step in &mut steps {
            if let plan::Step::Mount {
                fs: plan::Fs::Devpts,
                options,
                ..
            } = step
            {
                options.retain(|(key, _)| *key != "gid");
            }
        }
    }
    apply::apply(&steps, apply::Inputs { image, binds })
}
