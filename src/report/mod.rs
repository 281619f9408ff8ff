//! The run report (`--report`, `--report-fd`): what happened to one sandbox,
//! as one JSON object. `Report` is plain data the supervisor fills in as it
//! learns things; `to_json` is pure; `sink` writes it out.

mod sink;

use std::net::Ipv4Addr;
use std::time::Duration;

pub(crate) use sink::Sink;

/// The format's version: bumped when a field changes meaning or goes away
/// (new fields may appear without it).
pub const VERSION: u32 = 1;

/// Which limit ended the run (or, for `Pids`, was hit during it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The kernel's OOM killer, at `--memory`.
    Oom,
    Timeout,
    CpuTime,
    /// A fork or clone was refused at `--pids`; the command may have carried on.
    Pids,
    Output,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Oom => "oom",
            Limit::Timeout => "timeout",
            Limit::CpuTime => "cpu-time",
            Limit::Pids => "pids",
            Limit::Output => "output",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// microbox's exit status.
    pub exit_code: i32,
    /// The signal that killed the command (or the sandbox, when microbox
    /// killed it).
    pub signal: Option<i32>,
    pub limit: Option<Limit>,
    /// From the command's start to the sandbox's end; None if it never started.
    pub wall: Option<Duration>,
    /// User and system CPU time of every process of the sandbox (its cgroup).
    pub cpu: Option<(Duration, Duration)>,
    pub memory_peak: Option<u64>,
    pub tasks_peak: Option<u64>,
    pub hostname: Option<String>,
    pub ip: Option<Ipv4Addr>,
    /// The first host id of the sandbox's range (65536 uids and gids).
    pub host_ids: Option<u32>,
    /// Whether denied syscalls were heard (a seccomp listener ran); without
    /// it `denied` is empty whatever the command did.
    pub denials_reported: bool,
    /// Denied syscall names with their counts, in the order first seen.
    pub denied: Vec<(String, u64)>,
    /// With `--output-limit`: bytes passed through, and whether more were cut.
    pub output: Option<(u64, bool)>,
    /// microbox's own failure, as its one line says it.
    pub error: Option<String>,
}

impl Report {
    /// One JSON object on one line, fields in a fixed order.
    pub fn to_json(&self) -> String {
        let mut out = Json::default();
        out.number("version", u64::from(VERSION));
        out.raw("exit_code", &self.exit_code.to_string());
        out.raw("signal", &opt(self.signal.map(|s| s.to_string())));
        out.raw("limit", &opt(self.limit.map(|l| json_string(l.name()))));
        out.raw("wall_seconds", &opt(self.wall.map(seconds)));
        out.raw(
            "user_cpu_seconds",
            &opt(self.cpu.map(|(user, _)| seconds(user))),
        );
        out.raw(
            "system_cpu_seconds",
            &opt(self.cpu.map(|(_, system)| seconds(system))),
        );
        out.raw(
            "memory_peak_bytes",
            &opt(self.memory_peak.map(|b| b.to_string())),
        );
        out.raw("tasks_peak", &opt(self.tasks_peak.map(|n| n.to_string())));
        out.raw("hostname", &opt(self.hostname.as_deref().map(json_string)));
        out.raw("ip", &opt(self.ip.map(|ip| json_string(&ip.to_string()))));
        let ids = self
            .host_ids
            .map(|first| format!("{{\"first\":{first},\"count\":{}}}", crate::ids::RANGE));
        out.raw("host_ids", &opt(ids));
        let denied = self.denials_reported.then(|| {
            let pairs: Vec<String> = self
                .denied
                .iter()
                .map(|(name, count)| format!("{}:{count}", json_string(name)))
                .collect();
            format!("{{{}}}", pairs.join(","))
        });
        out.raw("denied_syscalls", &opt(denied));
        out.raw(
            "output_bytes",
            &opt(self.output.map(|(bytes, _)| bytes.to_string())),
        );
        out.raw(
            "output_truncated",
            &opt(self.output.map(|(_, cut)| cut.to_string())),
        );
        out.raw("error", &opt(self.error.as_deref().map(json_string)));
        out.finish()
    }
}

#[derive(Default)]
struct Json(String);

impl Json {
    fn raw(&mut self, key: &str, value: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(&json_string(key));
        self.0.push(':');
        self.0.push_str(value);
    }

    fn number(&mut self, key: &str, value: u64) {
        self.raw(key, &value.to_string());
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn opt(value: Option<String>) -> String {
    value.unwrap_or_else(|| "null".to_string())
}

/// Microseconds exactly, as a decimal number of seconds.
fn seconds(duration: Duration) -> String {
    format!("{}.{:06}", duration.as_secs(), duration.subsec_micros())
}

/// A JSON string: quotes, backslashes and control characters escaped.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn every_field_is_there_and_parses_as_json() {
        let report = Report {
            exit_code: 124,
            signal: Some(9),
            limit: Some(Limit::Timeout),
            wall: Some(Duration::from_micros(1_500_042)),
            cpu: Some((Duration::from_millis(10), Duration::from_micros(3))),
            memory_peak: Some(4096),
            tasks_peak: None,
            hostname: Some("quiet-\"owl\"\n".into()),
            ip: Some(Ipv4Addr::new(10, 44, 0, 2)),
            host_ids: Some(1 << 31),
            denials_reported: true,
            denied: vec![("ptrace".into(), 2), ("keyctl".into(), 1)],
            output: Some((1 << 20, true)),
            error: None,
        };
        let text = report.to_json();
        assert!(!text.contains('\n'), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["exit_code"], 124);
        assert_eq!(value["signal"], 9);
        assert_eq!(value["limit"], "timeout");
        assert_eq!(value["wall_seconds"].as_f64(), Some(1.500042));
        assert_eq!(value["user_cpu_seconds"].as_f64(), Some(0.01));
        assert_eq!(value["system_cpu_seconds"].as_f64(), Some(0.000003));
        assert_eq!(value["memory_peak_bytes"], 4096);
        assert!(value["tasks_peak"].is_null());
        assert_eq!(value["hostname"], "quiet-\"owl\"\n");
        assert_eq!(value["ip"], "10.44.0.2");
        assert_eq!(value["host_ids"]["first"], 2147483648u64);
        assert_eq!(value["host_ids"]["count"], 65536);
        assert_eq!(value["denied_syscalls"]["ptrace"], 2);
        assert_eq!(value["denied_syscalls"]["keyctl"], 1);
        assert_eq!(value["output_bytes"], 1 << 20);
        assert_eq!(value["output_truncated"], true);
        assert!(value["error"].is_null());
    }

    #[test]
    fn an_empty_report_has_nulls_and_control_characters_are_escaped() {
        let report = Report {
            exit_code: 125,
            error: Some("microbox: bad \u{1} thing\\".into()),
            ..Report::default()
        };
        let value: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(value["exit_code"], 125);
        assert_eq!(value["error"], "microbox: bad \u{1} thing\\");
        for key in [
            "signal",
            "limit",
            "wall_seconds",
            "denied_syscalls",
            "output_bytes",
        ] {
            assert!(value[key].is_null(), "{key}");
        }
    }
}
