//! `--rlimit NAME=SOFT[:HARD]`: the per-process resource limits the command
//! starts with. Parsing is pure (the CLI fuzz target reaches it); [`apply`]
//! sets them in the command's process, right before its exec.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit as Limit};

use crate::error::{Error, Result};

/// The resources `--rlimit` takes, with the name the option spells.
const RESOURCES: [(&str, Resource, Unit); 7] = [
    ("NOFILE", Resource::Nofile, Unit::Count),
    ("NPROC", Resource::Nproc, Unit::Count),
    ("FSIZE", Resource::Fsize, Unit::Bytes),
    ("CORE", Resource::Core, Unit::Bytes),
    ("STACK", Resource::Stack, Unit::Bytes),
    ("AS", Resource::As, Unit::Bytes),
    ("MEMLOCK", Resource::Memlock, Unit::Bytes),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    Bytes,
}

/// One limit: `None` is unlimited (RLIM_INFINITY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// Index into `RESOURCES`.
    which: usize,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl Rlimit {
    pub fn name(&self) -> &'static str {
        RESOURCES[self.which].0
    }

    fn resource(&self) -> Resource {
        RESOURCES[self.which].1
    }
}

/// The names `--rlimit` accepts, for messages and the help.
pub fn names() -> String {
    RESOURCES.map(|(name, _, _)| name).join(", ")
}

/// `NAME=SOFT[:HARD]`: NAME with or without `RLIMIT_`, any case; each value a
/// number (a size like `1M` for the byte limits) or `unlimited`; without
/// HARD both are SOFT.
pub fn parse(text: &str) -> std::result::Result<Rlimit, String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=SOFT[:HARD], NAME one of {}", names()))?;
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("RLIMIT_").unwrap_or(&upper);
    let which = RESOURCES
        .iter()
        .position(|(known, _, _)| *known == bare)
        .ok_or_else(|| format!("unknown limit (use one of {})", names()))?;
    let unit = RESOURCES[which].2;
    let (soft, hard) = match values.split_once(':') {
        Some((soft, hard)) => (value(soft, unit)?, value(hard, unit)?),
        None => {
            let both = value(values, unit)?;
            (both, both)
        }
    };
    if below(hard, soft) {
        return Err("the soft limit is above the hard limit".into());
    }
    Ok(Rlimit { which, soft, hard })
}

fn value(text: &str, unit: Unit) -> std::result::Result<Option<u64>, String> {
    match text {
        "unlimited" | "infinity" => return Ok(None),
        "0" => return Ok(Some(0)),
        "" => return Err("a value is empty".into()),
        _ => {}
    }
    let parsed = match unit {
        Unit::Count => text.parse::<u64>().map_err(|_| "not a number".to_string()),
        Unit::Bytes => crate::units::parse_size(text),
    };
    // RLIM_INFINITY is u64::MAX: a number that large would mean "unlimited".
    match parsed {
        Ok(n) if n == u64::MAX => Err("too large (use unlimited)".into()),
        Ok(n) => Ok(Some(n)),
        Err(reason) => Err(format!("{reason} (use a number or unlimited)")),
    }
}

/// Whether limit `a` is below limit `b` (`None` is unlimited).
fn below(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// An OCI `process.rlimits` entry (`RLIMIT_NOFILE`, soft, hard); the
/// kernel's RLIM_INFINITY is unlimited. The resources `--rlimit` takes are
/// the ones supported here too.
pub fn from_oci(kind: &str, soft: u64, hard: u64) -> std::result::Result<Rlimit, String> {
    let bare = kind.strip_prefix("RLIMIT_").unwrap_or(kind);
    let which = RESOURCES
        .iter()
        .position(|(name, _, _)| *name == bare)
        .ok_or_else(|| format!("{kind} is not supported (supported: {})", names()))?;
    let value = |v: u64| (v != u64::MAX).then_some(v);
    if below(value(hard), value(soft)) {
        return Err(format!("{kind}: soft limit {soft} above hard limit {hard}"));
    }
    Ok(Rlimit {
        which,
        soft: value(soft),
        hard: value(hard),
    })
}

/// What the command gets: CORE=0 (a crashing program leaves no core file
/// anywhere the host would look), then `--rlimit` in order, a later one for
/// the same resource replacing an earlier.
pub fn effective(given: &[Rlimit]) -> Vec<Rlimit> {
    let core = RESOURCES
        .iter()
        .position(|(name, _, _)| *name == "CORE")
        .unwrap_or(0);
    let mut out = vec![Rlimit {
        which: core,
        soft: Some(0),
        hard: Some(0),
    }];
    for limit in given {
        out.retain(|l| l.which != limit.which);
        out.push(*limit);
    }
    out
}

/// Refuses, before anything starts, a hard limit above microbox's own: the
/// command holds no CAP_SYS_RESOURCE of the host, so the kernel would refuse
/// it in the sandbox. And NPROC where sandbox root is host root
/// (`host_root`: `--userns host`, `--fs host`): the kernel exempts uid 0
/// from it, so the limit would not hold.
pub fn check(limits: &[Rlimit], host_root: bool) -> Result<()> {
    for limit in limits {
        if host_root && RESOURCES[limit.which].1 == Resource::Nproc {
            return Err(Error::runtime(
                "--rlimit NPROC: not enforced where sandbox root is host root (--userns host, \
                 --fs host): the kernel exempts uid 0; use --pids",
            ));
        }
        let current = getrlimit(limit.resource()).maximum;
        if below(current, limit.hard) {
            let shown = current.map_or("unlimited".to_string(), |n| n.to_string());
            return Err(Error::runtime(format!(
                "--rlimit {}: the hard limit cannot be raised above microbox's own ({shown})",
                limit.name()
            )));
        }
    }
    Ok(())
}

/// Sets each limit in the calling process (the command's, before exec).
pub fn apply(limits: &[Rlimit]) -> Result<()> {
    for limit in limits {
        setrlimit(
            limit.resource(),
            Limit {
                current: limit.soft,
                maximum: limit.hard,
            },
        )
        .map_err(|e| {
            Error::os("set the resource limit", e).on(format!("RLIMIT_{}", limit.name()))
        })?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, Option<u64>, Option<u64>) {
        let limit = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (limit.name().to_string(), limit.soft, limit.hard)
    }

    #[test]
    fn names_values_and_both_halves_are_read() {
        assert_eq!(parsed("NOFILE=16"), ("NOFILE".into(), Some(16), Some(16)));
        assert_eq!(
            parsed("nofile=16:32"),
            ("NOFILE".into(), Some(16), Some(32))
        );
        assert_eq!(
            parsed("RLIMIT_FSIZE=1M"),
            ("FSIZE".into(), Some(1 << 20), Some(1 << 20))
        );
        assert_eq!(parsed("core=0"), ("CORE".into(), Some(0), Some(0)));
        assert_eq!(
            parsed("AS=1G:unlimited"),
            ("AS".into(), Some(1 << 30), None)
        );
        assert_eq!(parsed("stack=infinity"), ("STACK".into(), None, None));
        assert_eq!(
            parsed("MEMLOCK=64K"),
            ("MEMLOCK".into(), Some(65536), Some(65536))
        );
    }

    #[test]
    fn bad_names_and_values_say_why() {
        for (text, reason) in [
            ("NOFILE", "expected NAME=SOFT[:HARD]"),
            ("CPU=1", "unknown limit"),
            ("=1", "unknown limit"),
            ("NOFILE=", "empty"),
            ("NOFILE=1:", "empty"),
            ("NOFILE=1M", "not a number"),
            ("NOFILE=-1", "not a number"),
            ("FSIZE=1.5", "not a whole number"),
            ("NOFILE=32:16", "soft limit is above"),
            ("NOFILE=unlimited:16", "soft limit is above"),
            ("NOFILE=18446744073709551615", "too large"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn core_is_zero_unless_given_and_a_later_limit_wins() {
        let defaults = effective(&[]);
        assert_eq!(defaults.len(), 1);
        assert_eq!((defaults[0].name(), defaults[0].hard), ("CORE", Some(0)));
        let given = [
            parse("NOFILE=16").unwrap(),
            parse("CORE=1M").unwrap(),
            parse("NOFILE=8").unwrap(),
        ];
        let out = effective(&given);
        let shown: Vec<(&str, Option<u64>)> = out.iter().map(|l| (l.name(), l.soft)).collect();
        assert_eq!(shown, [("CORE", Some(1 << 20)), ("NOFILE", Some(8))]);
    }

    #[test]
    fn a_hard_limit_above_our_own_is_refused() {
        let ours = getrlimit(Resource::Nofile).maximum;
        let Some(ours) = ours else { return };
        let above = parse(&format!("NOFILE={}", ours + 1)).unwrap();
        let err = check(&[above], false).expect_err("above our hard limit");
        assert!(err.to_string().contains("cannot be raised"), "{err}");
        assert!(check(&[parse(&format!("NOFILE=1:{ours}")).unwrap()], false).is_ok());
    }

    #[test]
    fn nproc_is_refused_where_sandbox_root_is_host_root() {
        let nproc = [parse("NPROC=10").unwrap()];
        assert!(check(&nproc, false).is_ok());
        let err = check(&nproc, true).expect_err("host root");
        assert!(err.to_string().contains("--pids"), "{err}");
    }
}
