//! A fresh /proc for the new pid namespace, with runc's masked and read-only
//! paths: host information (kcore, keys, timers) hidden behind /dev/null or an
//! empty read-only tmpfs, and the kernel's knobs (sys, sysrq-trigger) read-only.

use rustix::mount::MountAttrFlags;

use super::plan::{At, Base, Fs, Lookup, Source, Step, Value};
use super::resolve::Kind;

/// Files hidden by binding /dev/null over them.
pub(super) const MASKED_FILES: &[&str] = &[
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "interrupts",
    // Beyond runc's list: sandbox root is host uid 0 for these root-only files,
    // which give kernel addresses (KASLR) and the host's key usage per user.
    "vmallocinfo",
    "key-users",
    // Host physical memory, page by page (0400): which frames hold what, the
    // layout a Rowhammer or page-cache side channel needs.
    "kpagecount",
    "kpageflags",
    "kpagecgroup",
    // Allocator state of the host kernel: slab caches (0400), free pages by
    // migrate type (0400), by order and by zone (0444, but of no use to a
    // sandbox, whose memory is its cgroup's): what heap grooming for a kernel
    // exploit watches, and other tenants' memory pressure.
    "slabinfo",
    "pagetypeinfo",
    "buddyinfo",
    "zoneinfo",
    // The host kernel's log (0400). The kernel wants CAP_SYSLOG in the initial
    // namespace, which only `--userns host --cap-add SYSLOG` gives; masked
    // anyway so that no option combination reads it.
    "kmsg",
    // Not a mainline file: an accounting module on this project's CI machines
    // (0400) that lists every host program's name and CPU time.
    "program_cpu",
    // Not mainline either, and seen on the same machines: host-wide pipe and
    // scheduler counters (0600). Any root-only sysctl is readable while sandbox
    // root is host root; an id-shifted sandbox root (issue 11) closes the class.
    "sys/fs/pipe-keep",
    "sys/kernel/sched_vcpu_pack",
];
/// Directories hidden by an empty read-only tmpfs.
/// `dynamic_debug` (Debian's kernels): its `control` file checks no capability,
/// so a sandbox could switch on every debug message of the host kernel.
pub(super) const MASKED_DIRS: &[&str] = &["acpi", "asound", "scsi", "dynamic_debug"];
/// Made read-only by a bind of themselves.
pub(super) const READ_ONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];

const PROC_ATTRS: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NOSUID
    .union(MountAttrFlags::MOUNT_ATTR_NODEV)
    .union(MountAttrFlags::MOUNT_ATTR_NOEXEC);
const READ_ONLY_ATTRS: MountAttrFlags = PROC_ATTRS.union(MountAttrFlags::MOUNT_ATTR_RDONLY);

/// proc on `/proc` below `parent` (the new root, or the host tree with
/// `--fs host`), then its read-only parts and its masks. Files and
/// directories a kernel does not have are skipped.
pub fn steps(parent: Base) -> Vec<Step> {
    let at = |name: &str| At {
        base: Base::Proc,
        path: name.to_string(),
        lookup: Lookup::Fresh,
        create: None,
    };
    let mut steps = vec![Step::Mount {
        fs: Fs::Proc,
        target: At {
            base: parent,
            path: "proc".to_string(),
            lookup: Lookup::NoSymlinks,
            // An image may lack /proc; the host has one, and nothing is made there.
            create: (parent != Base::Host).then_some(Kind::Dir),
        },
        attrs: PROC_ATTRS,
        options: Vec::new(),
        becomes: Some(Base::Proc),
        missing_ok: false,
    }];
    // Read-only binds first: they are not recursive, so a mask below one
    // (sys/fs/...) made before it would be covered by it.
    steps.extend(READ_ONLY.iter().map(|name| Step::Bind {
        source: Source::Itself,
        target: at(name),
        attrs: READ_ONLY_ATTRS,
        missing_ok: true,
    }));
    steps.extend(MASKED_FILES.iter().map(|name| Step::Bind {
        source: Source::HostDevice {
            name: "null",
            major: 1,
            minor: 3,
        },
        target: at(name),
        attrs: MountAttrFlags::empty(),
        missing_ok: true,
    }));
    steps.extend(MASKED_DIRS.iter().map(|name| Step::Mount {
        fs: Fs::Tmpfs,
        target: at(name),
        attrs: READ_ONLY_ATTRS,
        options: vec![("size", Value::Text("0".to_string()))],
        becomes: None,
        missing_ok: true,
    }));
    steps
}
