//! Which device nodes an OCI container may make and open
//! (`linux.resources.devices`): the rules as data ([`effective_rules`]),
//! written to the v1 devices controller ([`write_v1`]), or compiled into a
//! BPF_PROG_TYPE_CGROUP_DEVICE program ([`program_v2`]) that [`attach_v2`]
//! attaches to the container's v2 cgroup.
//!
//! # What a rule list means: v1's reading, on both hierarchies
//!
//! On v1 the kernel interprets the lines, so its reading is what the rules
//! mean, and the v2 program must answer the same. That reading is not "the
//! last matching rule wins": security/device_cgroup.c keeps a default (allow
//! or deny) and a list of exceptions keyed by type, major and minor.
//!
//! - `a` resets: deny everything (devices.deny) or allow everything
//!   (devices.allow), with no exceptions.
//! - Any other line that goes against the default (an allow under deny, a
//!   deny under allow) adds its access to the exception with exactly its key
//!   (`dev_exception_add`); one that goes with the default removes its access
//!   from the exception with exactly its key, and from no other
//!   (`dev_exception_rm`).
//! - Under default deny an access is allowed when one matching exception (`*`
//!   matches any number) has every bit asked for (`match_exception`); under
//!   default allow it is denied when one matching exception has any bit asked
//!   for (`match_exception_partial`).
//!
//! So after the deny-all every list here starts with, `c 10:200 r` then
//! `c 10:200 w` allow opening /dev/net/tun for reading and writing at once
//! (they merge into one exception, `rw`), and a deny of `c 10:200` takes
//! back an allow of `c 10:200` but not one of `c 10:*`; last-match-wins
//! would deny both. We follow the kernel, as runc does with its devices
//! emulator: [`v1_lines`] is the one list of lines, v1 gets it as it is, and
//! [`V1State`] replays it the kernel's way so that the v2 program is
//! compiled from the same state. No access is allowed on one hierarchy and
//! denied on the other; the price is v1's surprise with narrower denies,
//! which engines do not send (Podman, Docker and containerd send a deny-all
//! and then allows).
//!
//! On v2 the program is attached with BPF_F_ALLOW_MULTI: programs of parent
//! cgroups still run and an access needs all of them to allow it, as on v1,
//! where a child never gets more than its parent.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::{common_hint, with_hint, write_all_once, write_error};
use crate::error::{Error, Result};
use crate::sys::bpf::{self, BpfInsn};

/// OCI `type`: `a` (or absent), `c`, `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    All,
    Char,
    Block,
}

/// One entry of `linux.resources.devices`. `None` is `*`, any number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

/// OCI `access`: a subset of `rwm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl Access {
    pub(crate) const ALL: Access = Access {
        read: true,
        write: true,
        mknod: true,
    };
    pub(crate) const MKNOD: Access = Access {
        read: false,
        write: false,
        mknod: true,
    };
    const NONE: Access = Access {
        read: false,
        write: false,
        mknod: false,
    };

    /// `r`, `w` and `m` in any order; a repeated letter is harmless. The
    /// empty string (and an absent `access`) is all three, as runc reads it.
    pub(crate) fn parse(text: &str) -> Option<Access> {
        if text.is_empty() {
            return Some(Access::ALL);
        }
        let mut access = Access::NONE;
        for letter in text.chars() {
            match letter {
                'r' => access.read = true,
                'w' => access.write = true,
                'm' => access.mknod = true,
                _ => return None,
            }
        }
        Some(access)
    }

    /// As the high half of `bpf_cgroup_dev_ctx.access_type` (and v1's
    /// ACC_* bits, which are the same).
    fn bits(self) -> u16 {
        let mut bits = 0;
        for (on, bit) in [
            (self.read, bpf::BPF_DEVCG_ACC_READ),
            (self.write, bpf::BPF_DEVCG_ACC_WRITE),
            (self.mknod, bpf::BPF_DEVCG_ACC_MKNOD),
        ] {
            if on {
                bits |= bit;
            }
        }
        bits
    }

    fn from_bits(bits: u16) -> Access {
        Access {
            read: bits & bpf::BPF_DEVCG_ACC_READ != 0,
            write: bits & bpf::BPF_DEVCG_ACC_WRITE != 0,
            mknod: bits & bpf::BPF_DEVCG_ACC_MKNOD != 0,
        }
    }

    fn is_empty(self) -> bool {
        self.bits() == 0
    }
}

/// `rwm` order, as devices.list shows it.
impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, letter) in [(self.read, "r"), (self.write, "w"), (self.mknod, "m")] {
            if on {
                f.write_str(letter)?;
            }
        }
        Ok(())
    }
}

/// The first rule of every list: nothing is allowed but what follows.
const DENY_ALL: DeviceRule = DeviceRule {
    allow: false,
    kind: DeviceKind::All,
    major: None,
    minor: None,
    access: Access::ALL,
};

/// What every container may use whatever its config says, as runc grants:
/// the nodes of a container's /dev, the pty slaves, and making (not opening)
/// any node. They come after the config's rules, so it cannot take them away.
/// Not /dev/console (5:1): microbox makes no console node, and a node made
/// inside would be the host's console (a review found it writable and
/// readable from a container).
const DEFAULTS: [(&str, DeviceRule); 10] = [
    ("/dev/null", node(1, 3)),
    ("/dev/zero", node(1, 5)),
    ("/dev/full", node(1, 7)),
    ("/dev/random", node(1, 8)),
    ("/dev/urandom", node(1, 9)),
    ("/dev/tty", node(5, 0)),
    ("/dev/ptmx", node(5, 2)),
    (
        "/dev/pts/*",
        allow(DeviceKind::Char, Some(136), None, Access::ALL),
    ),
    (
        "mknod of any char device",
        allow(DeviceKind::Char, None, None, Access::MKNOD),
    ),
    (
        "mknod of any block device",
        allow(DeviceKind::Block, None, None, Access::MKNOD),
    ),
];

/// `c major:minor rwm`.
const fn node(major: u32, minor: u32) -> DeviceRule {
    allow(DeviceKind::Char, Some(major), Some(minor), Access::ALL)
}

const fn allow(
    kind: DeviceKind,
    major: Option<u32>,
    minor: Option<u32>,
    access: Access,
) -> DeviceRule {
    DeviceRule {
        allow: true,
        kind,
        major,
        minor,
        access,
    }
}

/// The rules a container gets: deny everything, then the config's rules in
/// order, then [`DEFAULTS`].
pub(crate) fn effective_rules(config: &[DeviceRule]) -> Vec<DeviceRule> {
    let defaults = DEFAULTS.iter().map(|(_, rule)| rule.clone());
    std::iter::once(DENY_ALL)
        .chain(config.iter().cloned())
        .chain(defaults)
        .collect()
}

/// A node type as v1 keys exceptions; `a` is never a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeType {
    Char,
    Block,
}

/// The key of a v1 exception: `c 1:3`, `b *:*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    kind: NodeType,
    major: Option<u32>,
    minor: Option<u32>,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        let kind = match self.kind {
            NodeType::Char => 'c',
            NodeType::Block => 'b',
        };
        write!(f, "{kind} {}:{}", number(self.major), number(self.minor))
    }
}

/// One write to devices.allow or devices.deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V1Line {
    /// `a`: every device, every access, and the exceptions cleared.
    All { allow: bool },
    /// `c 1:3 rwm`.
    Node {
        allow: bool,
        node: Node,
        access: Access,
    },
}

impl V1Line {
    fn allow(&self) -> bool {
        match *self {
            V1Line::All { allow } | V1Line::Node { allow, .. } => allow,
        }
    }
}

impl fmt::Display for V1Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V1Line::All { .. } => f.write_str("a"),
            V1Line::Node { node, access, .. } => write!(f, "{node} {access}"),
        }
    }
}

/// The lines v1 gets for `rules`, which the v2 program is also compiled from.
/// Three things differ from writing each rule as it is:
/// - the list starts from deny-all (an `a` to devices.deny) when its first
///   rule is no `a`: a new v1 cgroup inherits its parent's rules, which the
///   program could not know;
/// - a rule of type `a` other than `a *:* rwm` becomes its `c` and `b`
///   halves: the kernel takes any line that starts with `a` for "every
///   device, every access", so `a 1:* r` would allow (or deny) it all;
/// - a rule without access is left out: it grants and denies nothing.
fn v1_lines(rules: &[DeviceRule]) -> Vec<V1Line> {
    let mut lines = Vec::with_capacity(rules.len() + 1);
    for rule in rules.iter().filter(|rule| !rule.access.is_empty()) {
        let every = rule.major.is_none() && rule.minor.is_none() && rule.access == Access::ALL;
        let kinds: &[NodeType] = match rule.kind {
            DeviceKind::All if every => {
                lines.push(V1Line::All { allow: rule.allow });
                continue;
            }
            DeviceKind::All => &[NodeType::Char, NodeType::Block],
            DeviceKind::Char => &[NodeType::Char],
            DeviceKind::Block => &[NodeType::Block],
        };
        for &kind in kinds {
            lines.push(V1Line::Node {
                allow: rule.allow,
                node: Node {
                    kind,
                    major: rule.major,
                    minor: rule.minor,
                },
                access: rule.access,
            });
        }
    }
    if !matches!(lines.first(), Some(V1Line::All { .. })) {
        lines.insert(0, V1Line::All { allow: false });
    }
    lines
}

/// What the v1 devices controller holds after a list of lines: the kernel's
/// model, replayed (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
struct V1State {
    default_allow: bool,
    /// In the kernel's order (new keys at the end).
    exceptions: Vec<(Node, Access)>,
}

impl V1State {
    fn replay(lines: &[V1Line]) -> V1State {
        let mut state = V1State {
            default_allow: false,
            exceptions: Vec::new(),
        };
        for line in lines {
            match *line {
                V1Line::All { allow } => {
                    state.default_allow = allow;
                    state.exceptions.clear();
                }
                V1Line::Node {
                    allow,
                    node,
                    access,
                } if allow != state.default_allow => state.add(node, access),
                V1Line::Node { node, access, .. } => state.remove(node, access),
            }
        }
        state
    }

    /// `dev_exception_add`: merged into the exception with the same key.
    fn add(&mut self, node: Node, access: Access) {
        match self.exceptions.iter_mut().find(|(key, _)| *key == node) {
            Some((_, held)) => *held = Access::from_bits(held.bits() | access.bits()),
            None => self.exceptions.push((node, access)),
        }
    }

    /// `dev_exception_rm`: only the exception with the same key loses the
    /// bits; one left with none is dropped.
    fn remove(&mut self, node: Node, access: Access) {
        for (key, held) in &mut self.exceptions {
            if *key == node {
                *held = Access::from_bits(held.bits() & !access.bits());
            }
        }
        self.exceptions.retain(|(_, held)| !held.is_empty());
    }
}

/// The program's registers. R1 holds the context pointer on entry; R0 the verdict.
const R_VERDICT: u8 = 0;
const R_CTX: u8 = 1;
const R_ASKED: u8 = 2;
const R_TYPE: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;
const R_BITS: u8 = 6;

/// The v2 program for `rules`, with v1's answers: compiled from the state
/// [`V1State`] replays from [`v1_lines`]. Returns 1 (allow) or 0 (deny).
pub(crate) fn program_v2(rules: &[DeviceRule]) -> Vec<BpfInsn> {
    compile(&V1State::replay(&v1_lines(rules)))
}

/// Each exception becomes one block that jumps to the next block unless the
/// access matches (type, then major and minor where they are numbers, then
/// the access bits) and otherwise returns the exception's verdict; after
/// the last block comes the default. Every jump is forward and within its
/// block, and every block has a jump past its `exit`, so no instruction is
/// unreachable (the verifier refuses those).
fn compile(state: &V1State) -> Vec<BpfInsn> {
    let mut prog = vec![
        BpfInsn::load_word(R_ASKED, R_CTX, bpf::CTX_ACCESS_TYPE),
        BpfInsn::mov32_reg(R_TYPE, R_ASKED),
        BpfInsn::and32_imm(R_TYPE, 0xffff),
        BpfInsn::rsh32_imm(R_ASKED, 16),
        BpfInsn::load_word(R_MAJOR, R_CTX, bpf::CTX_MAJOR),
        BpfInsn::load_word(R_MINOR, R_CTX, bpf::CTX_MINOR),
    ];
    let (verdict, default) = if state.default_allow { (0, 1) } else { (1, 0) };
    for (node, access) in &state.exceptions {
        let Some(tests) = key_tests(node) else {
            continue;
        };
        let bits = i32::from(access.bits());
        let check = if state.default_allow {
            // Denied when any bit asked for is one of the exception's.
            [
                BpfInsn::mov32_reg(R_BITS, R_ASKED),
                BpfInsn::and32_imm(R_BITS, bits),
                BpfInsn::jeq_imm(R_BITS, 0, 2),
            ]
        } else {
            // Allowed when no bit asked for is missing from the exception;
            // a bit the kernel might add one day counts as missing.
            [
                BpfInsn::mov32_reg(R_BITS, R_ASKED),
                BpfInsn::and32_imm(R_BITS, !bits),
                BpfInsn::jne_imm(R_BITS, 0, 2),
            ]
        };
        let ret = [BpfInsn::mov64_imm(R_VERDICT, verdict), BpfInsn::exit()];
        let mut left = tests.len() + check.len() + ret.len();
        for (reg, value) in tests {
            left -= 1;
            prog.push(BpfInsn::jne_imm(reg, value, jump(left)));
        }
        prog.extend(check);
        prog.extend(ret);
    }
    prog.push(BpfInsn::mov64_imm(R_VERDICT, default));
    prog.push(BpfInsn::exit());
    prog
}

/// The register comparisons of a key: type always, major and minor when not
/// `*`. None when a number is above `i32::MAX`, which an immediate cannot
/// hold and no device has (majors are 12 bits, minors 20): such an exception
/// matches nothing, on v1 too, and is left out.
fn key_tests(node: &Node) -> Option<Vec<(u8, i32)>> {
    let kind = match node.kind {
        NodeType::Char => bpf::BPF_DEVCG_DEV_CHAR,
        NodeType::Block => bpf::BPF_DEVCG_DEV_BLOCK,
    };
    let mut tests = vec![(R_TYPE, i32::from(kind))];
    for (reg, number) in [(R_MAJOR, node.major), (R_MINOR, node.minor)] {
        if let Some(number) = number {
            tests.push((reg, i32::try_from(number).ok()?));
        }
    }
    Some(tests)
}

/// A jump over `n` instructions. Blocks are at most 8 long; were one ever
/// longer than i16 allows, the verifier would refuse the program (an error,
/// not a container without rules).
fn jump(n: usize) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}

/// Our own program, under the crate's license; it calls no helpers, so no
/// GPL-only one is needed.
const LICENSE: &CStr = c"MIT";
const LOAD_OP: &str = "load the device cgroup BPF program";
const ATTACH_OP: &str = "attach the device cgroup BPF program to";

/// Loads [`program_v2`] for `rules` and attaches it to the cgroup directory
/// `cgroup_dir` (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI). The attachment holds
/// the program: it lives as long as the cgroup, and our descriptor is closed.
pub(crate) fn attach_v2(cgroup_dir: BorrowedFd<'_>, rules: &[DeviceRule]) -> Result<()> {
    let prog = bpf::prog_load_cgroup_device(&program_v2(rules), LICENSE).map_err(load_error)?;
    bpf::prog_attach(
        prog.as_fd(),
        cgroup_dir,
        bpf::BPF_CGROUP_DEVICE,
        bpf::BPF_F_ALLOW_MULTI,
    )
    .map_err(attach_error)
}

fn load_error(err: io::Error) -> Error {
    let rejected = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<bpf::Rejected>());
    if let Some(rejected) = rejected {
        return Error::os(LOAD_OP, io::Error::from_raw_os_error(rejected.errno))
            .detail(format!("the verifier says: {}", rejected.reason))
            .hint("a bug in microbox's program: please report it");
    }
    let hint = match err.raw_os_error() {
        Some(libc::EPERM) => Some(
            "bpf() needs CAP_SYS_ADMIN (or CAP_BPF) in the host's user namespace, \
             and no seccomp policy or LSM that forbids it",
        ),
        Some(libc::EINVAL | libc::ENOSYS) => Some(
            "the kernel lacks BPF device programs for cgroup v2 \
             (CONFIG_CGROUP_BPF, Linux 4.15 or later)",
        ),
        _ => None,
    };
    with_hint(Error::os(LOAD_OP, err), hint)
}

fn attach_error(err: io::Error) -> Error {
    let root = rustix::process::geteuid().is_root();
    let hint = match err.raw_os_error() {
        Some(libc::EPERM) if root => Some(
            "a parent cgroup has a device program attached without BPF_F_ALLOW_MULTI, \
             which allows none below it",
        ),
        _ => common_hint(&err),
    };
    with_hint(Error::os(ATTACH_OP, err).on("the container's cgroup"), hint)
}

/// Writes [`v1_lines`] of `rules` to devices.allow and devices.deny in `dir`,
/// a cgroup of the v1 devices hierarchy, in order: one write(2) per line,
/// since the kernel parses one rule per write.
pub(crate) fn write_v1(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let allow = open_control(dir.join("devices.allow"))?;
    let deny = open_control(dir.join("devices.deny"))?;
    for line in v1_lines(rules) {
        let (path, fd) = if line.allow() { &allow } else { &deny };
        let text = line.to_string();
        write_all_once(fd, &text).map_err(|err| {
            let hint = v1_hint(&line, &err);
            write_error(&text, path, err, hint)
        })?;
    }
    Ok(())
}

fn open_control(path: PathBuf) -> Result<(PathBuf, OwnedFd)> {
    match rustix::fs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => Ok((path, fd)),
        Err(err) => {
            let err = io::Error::from(err);
            let hint = match err.raw_os_error() {
                Some(libc::ENOENT) => Some("is this a cgroup of the v1 devices controller?"),
                _ => common_hint(&err),
            };
            Err(with_hint(Error::os("open", err).on(path.display()), hint))
        }
    }
}

/// The advice the generic cgroup hints would get wrong.
fn v1_hint(line: &V1Line, err: &io::Error) -> Option<&'static str> {
    let root = rustix::process::geteuid().is_root();
    match (line, err.raw_os_error()) {
        (V1Line::Node { allow: true, .. }, Some(libc::EPERM)) if root => Some(
            "the parent cgroup does not allow this device (see its devices.list); \
             a child never gets more than its parent",
        ),
        (V1Line::All { allow: true }, Some(libc::EPERM)) if root => {
            Some("the parent cgroup does not allow every device")
        }
        (V1Line::All { .. }, Some(libc::EINVAL)) => {
            Some("the cgroup has children, and 'a' is refused then")
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    // --- rules as data ---------------------------------------------------

    fn rule(
        allow: bool,
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: Access::parse(access).unwrap(),
        }
    }

    fn char_rule(allow: bool, major: u32, minor: Option<u32>, access: &str) -> DeviceRule {
        rule(allow, DeviceKind::Char, Some(major), minor, access)
    }

    /// `+c 1:3 rwm` / `-a` per line, as devices.allow (+) and devices.deny (-) get them.
    fn rendered(rules: &[DeviceRule]) -> Vec<String> {
        v1_lines(rules)
            .iter()
            .map(|line| format!("{}{line}", if line.allow() { '+' } else { '-' }))
            .collect()
    }

    #[test]
    fn access_is_any_subset_of_rwm_and_empty_means_all() {
        let access = |text: &str| Access::parse(text).map(|a| a.to_string());
        assert_eq!(access(""), Some("rwm".into()));
        assert_eq!(access("r"), Some("r".into()));
        assert_eq!(access("mw"), Some("wm".into()));
        assert_eq!(access("mwr"), Some("rwm".into()));
        assert_eq!(access("rr"), Some("r".into()));
        for bad in ["x", "rwx", "R", " r", "a"] {
            assert_eq!(Access::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Access::parse("m"), Some(Access::MKNOD));
        assert_eq!(Access::parse("rwm"), Some(Access::ALL));
    }

    #[test]
    fn deny_all_then_the_config_in_order_then_the_defaults() {
        let config = [
            char_rule(true, 10, Some(200), "rwm"),
            char_rule(false, 10, Some(200), "w"),
        ];
        assert_eq!(
            rendered(&effective_rules(&config)),
            [
                "-a",
                "+c 10:200 rwm",
                "-c 10:200 w",
                "+c 1:3 rwm",
                "+c 1:5 rwm",
                "+c 1:7 rwm",
                "+c 1:8 rwm",
                "+c 1:9 rwm",
                "+c 5:0 rwm",
                "+c 5:2 rwm",
                "+c 136:* rwm",
                "+c *:* m",
                "+b *:* m",
            ]
        );
        let plain = effective_rules(&[]);
        assert_eq!(plain.len(), 1 + DEFAULTS.len());
        assert_eq!(plain[0], DENY_ALL);
    }

    #[test]
    fn v1_lines_say_what_the_rules_mean() {
        let all = |allow, major, access: &str| rule(allow, DeviceKind::All, major, None, access);
        let rules = [
            all(false, None, "rwm"),
            rule(true, DeviceKind::Block, Some(8), Some(0), "rw"),
            rule(true, DeviceKind::Char, None, None, "m"),
            // Written as "a" these would mean every device, every access.
            all(true, Some(4), "r"),
            all(false, None, "m"),
            // Grants and denies nothing.
            DeviceRule {
                access: Access::NONE,
                ..rule(true, DeviceKind::Char, Some(1), Some(1), "")
            },
            all(true, None, "rwm"),
        ];
        assert_eq!(
            rendered(&rules),
            [
                "-a",
                "+b 8:0 rw",
                "+c *:* m",
                "+c 4:* r",
                "+b 4:* r",
                "-c *:* m",
                "-b *:* m",
                "+a"
            ]
        );
        // A list that does not reset first is made to: a v1 cgroup starts
        // with its parent's rules, which the v2 program cannot know.
        assert_eq!(
            rendered(&[char_rule(true, 1, Some(3), "r")]),
            ["-a", "+c 1:3 r"]
        );
        assert_eq!(rendered(&[]), ["-a"]);
    }

    #[test]
    fn the_replay_follows_the_kernels_exception_list() {
        let state = |rules: &[DeviceRule]| {
            let state = V1State::replay(&v1_lines(rules));
            let list: Vec<String> = state
                .exceptions
                .iter()
                .map(|(node, access)| format!("{node} {access}"))
                .collect();
            (state.default_allow, list)
        };
        // Same key: merged, and a deny takes bits back.
        let merged = [
            char_rule(true, 10, Some(200), "r"),
            char_rule(true, 10, Some(200), "w"),
            char_rule(true, 1, Some(3), "rwm"),
            char_rule(false, 1, Some(3), "rwm"),
            char_rule(false, 10, Some(200), "r"),
        ];
        assert_eq!(state(&merged), (false, vec!["c 10:200 w".to_string()]));
        // Another key: a deny changes nothing.
        let wider = [
            char_rule(true, 10, None, "rwm"),
            char_rule(false, 10, Some(200), "rwm"),
        ];
        assert_eq!(state(&wider), (false, vec!["c 10:* rwm".to_string()]));
        // Under allow-all, denies are the exceptions and allows take them back.
        let open = [
            rule(true, DeviceKind::All, None, None, "rwm"),
            char_rule(false, 1, Some(3), "w"),
            char_rule(false, 1, Some(5), "rw"),
            char_rule(true, 1, Some(5), "r"),
        ];
        assert_eq!(
            state(&open),
            (true, vec!["c 1:3 w".to_string(), "c 1:5 w".to_string()])
        );
    }

    impl V1State {
        /// The kernel's decision (`__devcgroup_check_permission`), for the
        /// program to be checked against.
        fn allows(&self, kind: NodeType, major: u32, minor: u32, asked: Access) -> bool {
            let matching = self.exceptions.iter().filter(|(node, _)| {
                node.kind == kind
                    && node.major.map_or(true, |m| m == major)
                    && node.minor.map_or(true, |m| m == minor)
            });
            let mut matching = matching.map(|(_, held)| held.bits());
            if self.default_allow {
                !matching.any(|held| held & asked.bits() != 0)
            } else {
                matching.any(|held| asked.bits() & !held == 0)
            }
        }

        /// devices.list as the kernel prints it (`devcgroup_seq_show`).
        fn list(&self) -> String {
            if self.default_allow {
                return "a *:* rwm\n".to_string();
            }
            self.exceptions
                .iter()
                .map(|(node, access)| format!("{node} {access}\n"))
                .collect()
        }
    }

    // --- the program, run by a small interpreter -----------------------

    /// Runs `prog` on one access the way the kernel would, for exactly the
    /// instructions `compile` emits (anything else fails the test), and
    /// returns R0 at `exit`. Registers start unset, as the verifier sees
    /// them: reading one before writing it fails too.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // the casts are the instructions' semantics
    fn run(prog: &[BpfInsn], kind: NodeType, asked: Access, major: u32, minor: u32) -> u64 {
        use bpf::*;
        let kind = match kind {
            NodeType::Char => BPF_DEVCG_DEV_CHAR,
            NodeType::Block => BPF_DEVCG_DEV_BLOCK,
        };
        let ctx = [
            u32::from(kind) | (u32::from(asked.bits()) << 16),
            major,
            minor,
        ];
        let mut regs: [Option<u64>; 11] = [None; 11];
        regs[usize::from(R_CTX)] = Some(0);
        let mut pc = 0;
        loop {
            let insn = *prog.get(pc).expect("ran off the end of the program");
            pc += 1;
            let get = |r: u8| {
                regs[usize::from(r)].unwrap_or_else(|| panic!("r{r} read unset at {}", pc - 1))
            };
            let imm32 = insn.imm as u32;
            let imm64 = i64::from(insn.imm) as u64;
            let set = match insn.code {
                c if c == BPF_LDX | BPF_W | BPF_MEM => {
                    assert_eq!(insn.src, R_CTX, "loads are from the context only");
                    let field = match insn.off {
                        CTX_ACCESS_TYPE => 0,
                        CTX_MAJOR => 1,
                        CTX_MINOR => 2,
                        off => panic!("context offset {off}"),
                    };
                    Some(u64::from(ctx[field]))
                }
                c if c == BPF_ALU | BPF_MOV | BPF_X => Some(u64::from(get(insn.src) as u32)),
                c if c == BPF_ALU | BPF_AND | BPF_K => {
                    Some(u64::from(get(insn.dst) as u32 & imm32))
                }
                c if c == BPF_ALU | BPF_RSH | BPF_K => {
                    Some(u64::from((get(insn.dst) as u32) >> imm32))
                }
                c if c == BPF_ALU64 | BPF_MOV | BPF_K => Some(imm64),
                c if c == BPF_JMP | BPF_JEQ | BPF_K || c == BPF_JMP | BPF_JNE | BPF_K => {
                    assert!(insn.off >= 0, "backward jump at {}", pc - 1);
                    let equal = get(insn.dst) == imm64;
                    if equal == (c == BPF_JMP | BPF_JEQ | BPF_K) {
                        pc += insn.off as usize;
                    }
                    None
                }
                c if c == BPF_JMP | BPF_EXIT => return get(R_VERDICT),
                c => panic!("instruction {c:#04x} is not one program_v2 emits"),
            };
            if let Some(value) = set {
                assert_ne!(insn.dst, R_CTX, "the context pointer is overwritten");
                regs[usize::from(insn.dst)] = Some(value);
            }
        }
    }

    fn allowed(rules: &[DeviceRule], kind: NodeType, major: u32, minor: u32, access: &str) -> bool {
        let prog = program_v2(rules);
        match run(&prog, kind, Access::parse(access).unwrap(), major, minor) {
            0 => false,
            1 => true,
            other => panic!("verdict {other}"),
        }
    }

    use NodeType::{Block, Char};

    #[test]
    fn the_defaults_allow_the_basic_nodes_and_only_mknod_of_others() {
        let rules = effective_rules(&[]);
        assert!(allowed(&rules, Char, 1, 3, "r"), "/dev/null read");
        assert!(allowed(&rules, Char, 1, 3, "rw"), "/dev/null read+write");
        assert!(allowed(&rules, Char, 1, 9, "r"), "/dev/urandom");
        assert!(allowed(&rules, Char, 136, 7, "rw"), "/dev/pts/7");
        assert!(allowed(&rules, Char, 5, 2, "rw"), "/dev/ptmx");
        assert!(!allowed(&rules, Block, 8, 0, "r"), "/dev/sda read");
        assert!(!allowed(&rules, Block, 8, 0, "w"), "/dev/sda write");
        assert!(allowed(&rules, Block, 8, 0, "m"), "mknod of /dev/sda");
        assert!(allowed(&rules, Char, 1, 1, "m"), "mknod of /dev/mem");
        assert!(!allowed(&rules, Char, 1, 1, "r"), "/dev/mem read");
        assert!(!allowed(&rules, Char, 10, 200, "rw"), "/dev/net/tun");
        assert!(!allowed(&rules, Char, 4, 1, "r"), "/dev/tty1");
        for (name, rule) in &DEFAULTS {
            let (Some(major), Some(minor)) = (rule.major, rule.minor) else {
                continue;
            };
            assert!(allowed(&rules, Char, major, minor, "rwm"), "{name}");
        }
        // The type matters: block 1:3 is not /dev/null.
        assert!(!allowed(&rules, Block, 1, 3, "r"));
    }

    #[test]
    fn config_rules_add_and_take_back_like_v1() {
        let tun = |allow, access| char_rule(allow, 10, Some(200), access);
        let granted = effective_rules(&[tun(true, "rwm")]);
        assert!(allowed(&granted, Char, 10, 200, "rw"));
        assert!(allowed(&granted, Char, 10, 200, "r"));
        assert!(!allowed(&granted, Char, 10, 201, "r"));

        let revoked = effective_rules(&[tun(true, "rwm"), tun(false, "rwm")]);
        assert!(!allowed(&revoked, Char, 10, 200, "r"));
        let write_revoked = effective_rules(&[tun(true, "rwm"), tun(false, "w")]);
        assert!(allowed(&write_revoked, Char, 10, 200, "r"));
        assert!(!allowed(&write_revoked, Char, 10, 200, "w"));
        assert!(!allowed(&write_revoked, Char, 10, 200, "rw"));

        // v1's reading: grants of one key merge, but no access combines two
        // exceptions; a deny takes back only its own key. (Last-match-wins
        // would deny `split` and `narrower`.)
        let split = effective_rules(&[tun(true, "r"), tun(true, "w")]);
        assert!(allowed(&split, Char, 10, 200, "rw"));
        let crossed = effective_rules(&[
            char_rule(true, 10, None, "r"),
            rule(true, DeviceKind::Char, None, Some(200), "w"),
        ]);
        assert!(!allowed(&crossed, Char, 10, 200, "rw"));
        assert!(allowed(&crossed, Char, 10, 200, "r"));
        let narrower = effective_rules(&[char_rule(true, 10, None, "rwm"), tun(false, "rwm")]);
        assert!(allowed(&narrower, Char, 10, 200, "rw"));

        // A privileged container: allow-all, then one deny; the defaults
        // after the config take /dev/null's back (as on v1).
        let open = effective_rules(&[
            rule(true, DeviceKind::All, None, None, "rwm"),
            rule(false, DeviceKind::Block, Some(8), None, "w"),
            char_rule(false, 1, Some(3), "w"),
        ]);
        assert!(allowed(&open, Block, 8, 0, "r"));
        assert!(!allowed(&open, Block, 8, 0, "rw"));
        assert!(allowed(&open, Block, 8, 0, "m"));
        assert!(allowed(&open, Char, 1, 3, "w"));
        assert!(allowed(&open, Char, 4, 1, "rw"));

        // No device has such a number; the rule matches nothing.
        let huge = effective_rules(&[char_rule(true, u32::MAX, None, "rwm")]);
        assert_eq!(program_v2(&huge), program_v2(&effective_rules(&[])));
    }

    /// A tiny deterministic generator, so that the sweep is the same each run.
    struct Lcg(u64);

    impl Lcg {
        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            from[usize::try_from(self.0 >> 33).unwrap() % from.len()]
        }
    }

    const MAJORS: [u32; 5] = [1, 5, 8, 10, 136];
    const MINORS: [u32; 5] = [0, 1, 3, 5, 200];

    fn random_rules(lcg: &mut Lcg) -> Vec<DeviceRule> {
        let count = lcg.pick(&[0, 1, 2, 4, 6, 9]);
        (0..count)
            .map(|_| DeviceRule {
                allow: lcg.pick(&[true, true, false]),
                kind: lcg.pick(&[
                    DeviceKind::All,
                    DeviceKind::Char,
                    DeviceKind::Char,
                    DeviceKind::Block,
                ]),
                major: lcg.pick(&[None, Some(1), Some(8), Some(10), Some(136)]),
                minor: lcg.pick(&[None, None, Some(0), Some(3), Some(200)]),
                access: Access::from_bits(lcg.pick(&[1, 2, 3, 4, 6, 7, 7])),
            })
            .collect()
    }

    #[test]
    fn the_program_answers_as_the_replayed_v1_state_for_every_access() {
        let mut lcg = Lcg(7);
        for _ in 0..300 {
            let config = random_rules(&mut lcg);
            for rules in [effective_rules(&config), config.clone()] {
                let state = V1State::replay(&v1_lines(&rules));
                let prog = compile(&state);
                for kind in [Char, Block] {
                    for major in MAJORS {
                        for minor in MINORS {
                            for bits in 1..=7 {
                                let asked = Access::from_bits(bits);
                                let want = state.allows(kind, major, minor, asked);
                                let got = run(&prog, kind, asked, major, minor);
                                assert_eq!(
                                    got,
                                    u64::from(want),
                                    "{kind:?} {major}:{minor} {asked} under {rules:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_instruction_is_reachable_and_every_jump_lands_inside() {
        // What the verifier's CFG check refuses: unreachable code, jumps out
        // of the program, falling off its end.
        let mut lcg = Lcg(11);
        for _ in 0..100 {
            let prog = program_v2(&effective_rules(&random_rules(&mut lcg)));
            let mut seen = vec![false; prog.len()];
            let mut todo = vec![0usize];
            while let Some(pc) = todo.pop() {
                if std::mem::replace(&mut seen[pc], true) {
                    continue;
                }
                let insn = prog[pc];
                if insn.code == bpf::BPF_JMP | bpf::BPF_EXIT {
                    continue;
                }
                assert!(pc + 1 < prog.len(), "falls off the end at {pc}");
                todo.push(pc + 1);
                if insn.code & 0x07 == bpf::BPF_JMP {
                    let target = pc + 1 + usize::try_from(insn.off).unwrap();
                    assert!(target < prog.len(), "jump out at {pc}");
                    todo.push(target);
                }
            }
            assert!(
                seen.iter().all(|&s| s),
                "unreachable instructions in {prog:?}"
            );
        }
        // The defaults are small: far below the 4096 instructions of old kernels.
        assert!(program_v2(&effective_rules(&[])).len() < 128);
    }

    // --- with the kernel (root only) ------------------------------------

    fn is_cgroup2(path: &Path) -> bool {
        rustix::fs::statfs(path).is_ok_and(|stat| i128::from(stat.f_type) == 0x6367_7270)
    }

    fn root_or_skip(what: &str) -> bool {
        let root = rustix::process::geteuid().is_root();
        if !root {
            eprintln!("skipped: {what} needs root");
        }
        root
    }

    #[test]
    fn the_kernel_loads_the_program_and_explains_a_refusal() {
        if !root_or_skip("loading a BPF program") {
            return;
        }
        let config = [
            char_rule(true, 10, Some(200), "rwm"),
            char_rule(false, 10, Some(200), "w"),
        ];
        for rules in [effective_rules(&[]), effective_rules(&config)] {
            bpf::prog_load_cgroup_device(&program_v2(&rules), LICENSE).unwrap();
        }
        // Exit without a verdict: the verifier refuses, and says why.
        let err = bpf::prog_load_cgroup_device(&[BpfInsn::exit()], LICENSE).unwrap_err();
        let rejected = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<bpf::Rejected>())
            .unwrap();
        assert_eq!(rejected.errno, libc::EACCES);
        assert!(rejected.reason.contains("R0"), "{rejected}");
        let shown = load_error(err).to_string();
        println!("{shown}");
        assert!(
            shown.starts_with(
                "cannot load the device cgroup BPF program: Permission denied: the verifier says: "
            ),
            "{shown}"
        );
    }

    #[test]
    fn the_v1_kernel_holds_the_state_we_replay() {
        let parent = Path::new("/sys/fs/cgroup/devices");
        if !root_or_skip("writing a v1 devices cgroup") {
            return;
        }
        if !parent.join("devices.list").exists() {
            eprintln!(
                "skipped: no cgroup v1 devices controller at {}",
                parent.display()
            );
            return;
        }
        let dir = parent.join(format!("microbox-test-devices-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let mut lists = vec![
            effective_rules(&[]),
            effective_rules(&[
                char_rule(true, 10, Some(200), "r"),
                char_rule(true, 10, Some(200), "w"),
            ]),
            effective_rules(&[
                char_rule(true, 10, None, "rwm"),
                char_rule(false, 10, Some(200), "rwm"),
            ]),
            vec![
                rule(true, DeviceKind::All, None, None, "rwm"),
                char_rule(false, 1, Some(3), "w"),
            ],
        ];
        let mut lcg = Lcg(5);
        lists.extend((0..40).map(|_| effective_rules(&random_rules(&mut lcg))));
        let result = std::panic::catch_unwind(|| {
            for rules in &lists {
                write_v1(&dir, rules).unwrap();
                let held = std::fs::read_to_string(dir.join("devices.list")).unwrap();
                assert_eq!(held, V1State::replay(&v1_lines(rules)).list(), "{rules:?}");
            }
        });
        std::fs::remove_dir(&dir).unwrap();
        result.unwrap();
    }

    #[test]
    fn the_attached_program_decides_in_the_kernel() {
        if !root_or_skip("attaching a BPF program") {
            return;
        }
        let Some(root) = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(Path::new)
            .find(|path| is_cgroup2(path))
        else {
            eprintln!("skipped: no cgroup v2 hierarchy mounted");
            return;
        };
        let dir = root.join(format!("microbox-test-devices-{}", std::process::id()));
        let nodes = crate::test_dir("devices-nodes");
        std::fs::create_dir(&dir).unwrap();
        let probe = |inside: bool| {
            // Makes a node of /dev/sda (8:0) and opens it and four others
            // (head -c0), after moving the shell into the cgroup if `inside`.
            let script = r#"
                if [ -n "$CG" ]; then echo $$ > "$CG/cgroup.procs" || exit 9; fi
                rm -f "$T/sda"; mknod "$T/sda" b 8 0 && echo "mknod ok"
                for f in /dev/null /dev/zero /dev/kmsg /dev/loop0 "$T/sda"; do
                    if err=$(head -c0 "$f" 2>&1); then r=ok
                    else case "$err" in *"not permitted"*) r=EPERM;; *) r=other;; esac; fi
                    echo "${f#$T/} $r"
                done
            "#;
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", script])
                .env("CG", if inside { dir.as_os_str() } else { "".as_ref() })
                .env("T", &nodes)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let result = std::panic::catch_unwind(|| {
            let fd = rustix::fs::open(
                &dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap();
            attach_v2(fd.as_fd(), &effective_rules(&[])).unwrap();
            let outside = probe(false);
            let inside = probe(true);
            for (before, after) in outside.lines().zip(inside.lines()) {
                let want = match before {
                    "/dev/kmsg ok" => "/dev/kmsg EPERM",
                    "/dev/loop0 ok" => "/dev/loop0 EPERM",
                    // Absent on this host, or not ours to open: no evidence either way.
                    other if other.ends_with(" other") => continue,
                    same => same,
                };
                assert_eq!(after, want, "outside:\n{outside}inside:\n{inside}");
            }
            assert!(inside.starts_with("mknod ok\n/dev/null ok\n"), "{inside}");
            // No sda here: ENXIO outside, but the program refuses first.
            assert!(inside.ends_with("\nsda EPERM\n"), "{inside}");
            println!("outside:\n{outside}inside:\n{inside}");
        });
        std::fs::remove_dir(&dir).unwrap();
        std::fs::remove_dir_all(&nodes).unwrap();
        result.unwrap();
    }
}
