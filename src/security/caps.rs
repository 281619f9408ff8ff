//! Capability names and the sandbox's capability sets.
//!
//! The sandboxed command keeps Docker's default set, adjusted by `--cap-add` and
//! `--cap-drop`; init keeps nothing. Everything else leaves every set, bounding
//! included, so neither the command nor a file-capability binary in the image
//! can get it back at `execve` (CVE-2022-24769 and its siblings kept a non-empty
//! inheritable set; bubblewrap's `--cap-add` fills the ambient set: we clear both).

use rustix::io::Errno;
use rustix::thread::{self as rthread, CapabilitySet, CapabilitySets};

use crate::error::{Error, Result};

/// `CAP_*` names by number (include/uapi/linux/capability.h), 0 to CAP_LAST_CAP of
/// Linux 5.9 and later.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The highest capability number microbox knows by name.
pub(crate) const LAST: u8 = 40;

pub(crate) const CHOWN: u8 = 0;
pub(crate) const DAC_OVERRIDE: u8 = 1;
pub(crate) const FOWNER: u8 = 3;
pub(crate) const FSETID: u8 = 4;
pub(crate) const KILL: u8 = 5;
pub(crate) const SETGID: u8 = 6;
pub(crate) const SETUID: u8 = 7;
pub(crate) const SETPCAP: u8 = 8;
pub(crate) const NET_BIND_SERVICE: u8 = 10;
pub(crate) const NET_RAW: u8 = 13;
pub(crate) const SYS_CHROOT: u8 = 18;
pub(crate) const MKNOD: u8 = 27;
pub(crate) const AUDIT_WRITE: u8 = 29;
pub(crate) const SETFCAP: u8 = 31;

/// Docker's and runc's default set: what the sandboxed command keeps unless
/// `--cap-add`/`--cap-drop` say otherwise.
pub const DEFAULT: &[u8] = &[
    CHOWN,
    DAC_OVERRIDE,
    FSETID,
    FOWNER,
    MKNOD,
    NET_RAW,
    SETGID,
    SETUID,
    SETFCAP,
    SETPCAP,
    NET_BIND_SERVICE,
    SYS_CHROOT,
    KILL,
    AUDIT_WRITE,
];

/// The capability number for a name, with or without `CAP_`, any case.
pub(crate) fn from_name(name: &str) -> Option<u8> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    let index = NAMES
        .iter()
        .position(|full| full.strip_prefix("CAP_") == Some(bare))?;
    u8::try_from(index).ok()
}

/// `CAP_NAME` of a capability number, or `"CAP_UNKNOWN"` above `LAST`.
pub fn name(cap: u8) -> &'static str {
    NAMES
        .get(usize::from(cap))
        .copied()
        .unwrap_or("CAP_UNKNOWN")
}

/// The bit of `cap` in a capability mask; numbers of 64 and up have none.
fn bit(cap: u8) -> u64 {
    1u64.checked_shl(u32::from(cap)).unwrap_or(0)
}

/// The command's capability mask: [`DEFAULT`] plus `add`, minus `drop`.
///
/// Drop is applied last, so a capability named by both `--cap-add` and
/// `--cap-drop` is dropped: when the two disagree, the safer one wins.
pub(crate) fn sandbox_set(add: &[u8], drop: &[u8]) -> u64 {
    let added = DEFAULT
        .iter()
        .chain(add)
        .fold(0, |mask, &cap| mask | bit(cap));
    drop.iter().fold(added, |mask, &cap| mask & !bit(cap))
}

/// Every capability number set in `mask`, ascending.
pub(crate) fn members(mask: u64) -> impl Iterator<Item = u8> {
    (0..64u8).filter(move |&cap| mask & bit(cap) != 0)
}

/// Make `keep` the calling thread's whole capability state: bounding set =
/// permitted = effective = `keep`, inheritable and ambient empty.
///
/// The thread must hold `CAP_SETPCAP` in its user namespace (sandbox root right
/// after clone, or real root), because shrinking the bounding set needs it; that
/// is why the bounding set is shrunk first, while the thread still has it.
/// Capabilities above the running kernel's last one (older kernels lack BPF,
/// PERFMON, CHECKPOINT_RESTORE) are left out rather than failing.
/// Fails if `keep` asks for a capability the thread is not permitted to have,
/// since a silently missing `--cap-add` would be worse than an error.
pub(crate) fn apply(keep: u64) -> Result<()> {
    // One prctl per capability to drop; the kernel answers EINVAL past its last
    // capability, which also tells which ones it knows. Dropping one that is not
    // in the bounding set succeeds, so nothing needs to be read first.
    let mut known: u64 = 0;
    for cap in 0..64u8 {
        if keep & bit(cap) != 0 {
            known |= bit(cap);
            continue;
        }
        match rthread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(bit(
            cap,
        ))) {
            Ok(()) => known |= bit(cap),
            // The kernel knows no capability with this number, nor any higher one.
            Err(Errno::INVAL) => break,
            Err(e) => {
                return Err(
                    Error::os("drop", e).on(format_args!("{} from the bounding set", name(cap)))
                )
            }
        }
    }

    rthread::clear_ambient_capability_set()
        .map_err(|e| Error::os("clear the ambient capability set", e))?;

    let keep = keep & known;
    let current = rthread::capabilities(None)
        .map_err(|e| Error::os("read the capability sets of the sandbox process", e))?;
    let missing = keep & !current.permitted.bits();
    if missing != 0 {
        let names: Vec<&str> = members(missing).map(name).collect();
        let them = if names.len() == 1 { "it" } else { "them" };
        return Err(
            Error::failed("keep", format!("microbox itself does not have {them}"))
                .on(format_args!("{} in the sandbox", names.join(", ")))
                .hint(
                    "with --userns host, microbox runs with the capabilities it was started with",
                ),
        );
    }
    let kept = CapabilitySet::from_bits_retain(keep);
    rthread::set_capabilities(
        None,
        CapabilitySets {
            effective: kept,
            permitted: kept,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| Error::os("set the sandbox's capability sets (capset)", e))
}

/// An OCI container's capability sets and user, applied in the order the
/// kernel needs (runc's): the bounding set shrunk while CAP_SETPCAP is
/// still held, the ids changed with PR_SET_KEEPCAPS so that the permitted
/// set survives a change away from uid 0, then the three sets of capset,
/// then the ambient set (whose members must be permitted and inheritable).
pub(crate) struct ProcessCaps {
    pub bounding: u64,
    pub effective: u64,
    pub inheritable: u64,
    pub permitted: u64,
    pub ambient: u64,
}

pub(crate) fn apply_with_user(
    sets: &ProcessCaps,
    uid: u32,
    gid: u32,
    groups: &[u32],
) -> Result<()> {
    use rustix::process::{Gid, Uid};
    for cap in 0..64u8 {
        if sets.bounding & bit(cap) != 0 {
            continue;
        }
        match rthread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(bit(
            cap,
        ))) {
            Ok(()) => {}
            Err(Errno::INVAL) => break,
            Err(e) => {
                return Err(
                    Error::os("drop", e).on(format_args!("{} from the bounding set", name(cap)))
                )
            }
        }
    }
    rthread::set_keep_capabilities(true).map_err(|e| Error::os("set PR_SET_KEEPCAPS", e))?;
    let groups: Vec<Gid> = groups.iter().map(|&g| Gid::from_raw(g)).collect();
    rthread::set_thread_groups(&groups)
        .map_err(|e| Error::os("set the supplementary groups", e))?;
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    rthread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| Error::os("set the group id", e).on(gid.as_raw()))?;
    rthread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| Error::os("set the user id", e).on(uid.as_raw()))?;
    rthread::set_keep_capabilities(false).map_err(|e| Error::os("clear PR_SET_KEEPCAPS", e))?;
    let set = CapabilitySet::from_bits_retain;
    rthread::set_capabilities(
        None,
        CapabilitySets {
            effective: set(sets.effective),
            permitted: set(sets.permitted),
            inheritable: set(sets.inheritable),
        },
    )
    .map_err(|e| Error::os("set the container's capability sets (capset)", e))?;
    rthread::clear_ambient_capability_set()
        .map_err(|e| Error::os("clear the ambient capability set", e))?;
    for cap in members(sets.ambient) {
        rthread::configure_capability_in_ambient_set(set(bit(cap)), true).map_err(|e| {
            Error::os("raise", e).on(format_args!("{} in the ambient set", name(cap)))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_kernel_numbers() {
        // rustix's CapabilitySet is generated from the kernel's header constants:
        // an independent check of the NAMES order.
        for cap in 0..=LAST {
            let bare = &name(cap)["CAP_".len()..];
            let flag =
                CapabilitySet::from_name(bare).unwrap_or_else(|| panic!("rustix knows no {bare}"));
            assert_eq!(flag.bits(), bit(cap), "{bare}");
        }
        assert_eq!(NAMES.len(), usize::from(LAST) + 1);
        assert_eq!(name(LAST + 1), "CAP_UNKNOWN");
    }

    #[test]
    fn from_name_accepts_any_case_with_or_without_prefix() {
        assert_eq!(from_name("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(from_name("sys_admin"), Some(21));
        assert_eq!(from_name("Cap_Net_Raw"), Some(13));
        assert_eq!(from_name("chown"), Some(0));
        assert_eq!(from_name("checkpoint_restore"), Some(40));
        assert_eq!(from_name("CAP_"), None);
        assert_eq!(from_name(""), None);
        assert_eq!(from_name("SYS_ADMINX"), None);
        assert_eq!(from_name("CAP_CAP_CHOWN"), None);
        for cap in 0..=LAST {
            assert_eq!(from_name(name(cap)), Some(cap));
        }
    }

    #[test]
    fn default_is_dockers_set() {
        let names: Vec<&str> = DEFAULT.iter().map(|&cap| name(cap)).collect();
        assert_eq!(
            names,
            [
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FSETID",
                "CAP_FOWNER",
                "CAP_MKNOD",
                "CAP_NET_RAW",
                "CAP_SETGID",
                "CAP_SETUID",
                "CAP_SETFCAP",
                "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT",
                "CAP_KILL",
                "CAP_AUDIT_WRITE",
            ]
        );
        // The value Docker containers show as CapEff/CapBnd.
        assert_eq!(sandbox_set(&[], &[]), 0xa8_0425fb);
    }

    #[test]
    fn sandbox_set_adds_then_drops() {
        let base = sandbox_set(&[], &[]);
        assert_eq!(sandbox_set(&[21], &[]), base | 1 << 21);
        assert_eq!(sandbox_set(&[], &[NET_RAW]), base & !(1 << NET_RAW));
        // Named by both: dropped.
        assert_eq!(sandbox_set(&[21], &[21]), base);
        assert_eq!(sandbox_set(&[], DEFAULT), 0);
        // Out-of-range numbers cannot overflow the shift.
        assert_eq!(sandbox_set(&[200], &[64]), base);
        assert_eq!(members(1 << 3 | 1 << 40).collect::<Vec<_>>(), [3, 40]);
    }

    /// Runs `apply` on a fresh thread: capability sets are per thread, so the test
    /// process and the other tests keep theirs.
    fn status_after_apply(keep: u64) -> Option<Result<CapabilitySets>> {
        let caps = rthread::capabilities(None).ok()?;
        if !caps.effective.contains(CapabilitySet::SETPCAP) {
            eprintln!("skipped: needs CAP_SETPCAP");
            return None;
        }
        let handle = std::thread::spawn(move || {
            apply(keep)?;
            let sets = rthread::capabilities(None).map_err(|e| Error::os("capget", e))?;
            for cap in 0..=LAST {
                let one = CapabilitySet::from_bits_retain(bit(cap));
                match rthread::capability_is_in_bounding_set(one) {
                    Ok(present) => assert_eq!(present, keep & bit(cap) != 0, "{}", name(cap)),
                    Err(Errno::INVAL) => break,
                    Err(e) => panic!("{e}"),
                }
                assert_eq!(rthread::capability_is_in_ambient_set(one).ok(), Some(false));
            }
            Ok(sets)
        });
        Some(handle.join().expect("apply thread panicked"))
    }

    #[test]
    fn apply_keeps_exactly_the_set() {
        let keep = sandbox_set(&[], &[]);
        let Some(result) = status_after_apply(keep) else {
            return;
        };
        let sets = result.expect("apply");
        assert_eq!(sets.effective.bits(), keep);
        assert_eq!(sets.permitted.bits(), keep);
        assert!(sets.inheritable.is_empty());
    }

    #[test]
    fn apply_of_nothing_clears_everything() {
        let Some(result) = status_after_apply(0) else {
            return;
        };
        let sets = result.expect("apply");
        assert!(sets.effective.is_empty() && sets.permitted.is_empty());
        assert!(sets.inheritable.is_empty());
    }

    #[test]
    fn apply_ignores_caps_the_kernel_does_not_know() {
        let keep = bit(CHOWN) | bit(63);
        let Some(result) = status_after_apply(keep) else {
            return;
        };
        assert_eq!(result.expect("apply").effective.bits(), bit(CHOWN));
    }
}
