//! Text and JSON-lines logging to stderr.
//!
//! Every record is one line, written with one `write` so lines from the parent
//! and the sandbox's init do not interleave mid-line. Writing never panics: a
//! closed stderr must not bring down a process that is between clone and exec.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::spec::{LogFormat, LogLevel};

// Atomics rather than a Mutex: set once before any work, read from anywhere,
// including a forked child where a lock held by another thread would deadlock.
static LEVEL: AtomicU8 = AtomicU8::new(level_code(LogLevel::Error));
static FORMAT: AtomicU8 = AtomicU8::new(format_code(LogFormat::Text));

const fn level_code(level: LogLevel) -> u8 {
    match level {
        LogLevel::Error => 0,
        LogLevel::Warn => 1,
        LogLevel::Info => 2,
    }
}

const fn format_code(format: LogFormat) -> u8 {
    match format {
        LogFormat::Text => 0,
        LogFormat::Json => 1,
    }
}

/// Sets the level filter and the format for the rest of the process.
pub fn configure(level: LogLevel, format: LogFormat) {
    LEVEL.store(level_code(level), Ordering::Relaxed);
    FORMAT.store(format_code(format), Ordering::Relaxed);
}

/// Whether a record of `level` would be written; lets callers skip building costly fields.
pub(crate) fn enabled(level: LogLevel) -> bool {
    level_code(level) <= LEVEL.load(Ordering::Relaxed)
}

fn current_format() -> LogFormat {
    match FORMAT.load(Ordering::Relaxed) {
        1 => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// An error line: `microbox: <msg>` in text format. Always written.
pub fn error(msg: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Error, msg, fields);
}

/// `microbox: warning: <msg>`, written at `--log-level warn` and `info`.
pub(crate) fn warn(msg: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Warn, msg, fields);
}

/// `microbox: info: <msg>`, written at `--log-level info`.
pub(crate) fn info(msg: &str, fields: &[(&str, &str)]) {
    log(LogLevel::Info, msg, fields);
}

pub(crate) fn log(level: LogLevel, msg: &str, fields: &[(&str, &str)]) {
    if !enabled(level) {
        return;
    }
    let mut line = format_line(current_format(), level, msg, fields, SystemTime::now());
    line.push('\n');
    // Nowhere left to report a failed write to stderr.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// One record without its newline. Pure, so tests can check exact output.
///
/// Text: `microbox: <msg> key=value ...`, with `warning: ` or `info: ` before the
/// message below error level; control characters are escaped so a record stays
/// one line. JSON: `{"ts":..,"level":..,"msg":..,<fields>}`.
pub(crate) fn format_line(
    format: LogFormat,
    level: LogLevel,
    msg: &str,
    fields: &[(&str, &str)],
    now: SystemTime,
) -> String {
    match format {
        LogFormat::Text => text_line(level, msg, fields),
        LogFormat::Json => json_line(level, msg, fields, now),
    }
}

fn text_line(level: LogLevel, msg: &str, fields: &[(&str, &str)]) -> String {
    let mut out = String::from("microbox: ");
    match level {
        LogLevel::Error => {}
        LogLevel::Warn => out.push_str("warning: "),
        LogLevel::Info => out.push_str("info: "),
    }
    push_escaped(&mut out, msg, false);
    for (key, value) in fields {
        out.push(' ');
        push_escaped(&mut out, key, false);
        out.push('=');
        // Quote only when a reader could not otherwise tell where the value ends.
        let needs_quotes = value.is_empty()
            || value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\');
        if needs_quotes {
            out.push('"');
            push_escaped(&mut out, value, true);
            out.push('"');
        } else {
            out.push_str(value);
        }
    }
    out
}

fn json_line(level: LogLevel, msg: &str, fields: &[(&str, &str)], now: SystemTime) -> String {
    let level = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
    };
    let mut out = format!(
        "{{\"ts\":\"{}\",\"level\":\"{level}\",\"msg\":\"{}\"",
        rfc3339_utc(now),
        json_escape(msg)
    );
    for (key, value) in fields {
        let _ = write!(out, ",\"{}\":\"{}\"", json_escape(key), json_escape(value));
    }
    out.push('}');
    out
}

/// The inside of a JSON string literal (no surrounding quotes) for `s`.
pub(crate) fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(&mut out, s, true);
    out
}

/// Escapes control characters (as JSON does: `\n`, `\t`, `\r`, else `\u00XX`), and
/// with `quotes` also `"` and `\`, which text messages keep as they are.
fn push_escaped(out: &mut String, s: &str, quotes: bool) {
    for c in s.chars() {
        match c {
            '"' if quotes => out.push_str("\\\""),
            '\\' if quotes => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// `2024-02-29T23:59:59.999Z`. A clock before 1970 reads as 1970: a log stamp
/// is not worth an error.
pub(crate) fn rfc3339_utc(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
///
/// Counts in 400-year eras starting on 0000-03-01, so that February, with its
/// leap day, is the last month of each year and the leap rule is plain division.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    const DAYS_PER_ERA: u64 = 146_097;
    // Days from 0000-03-01 to 1970-01-01.
    let shifted = days + 719_468;
    let era = shifted / DAYS_PER_ERA;
    let day_of_era = shifted % DAYS_PER_ERA;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524
        - day_of_era / (DAYS_PER_ERA - 1))
        / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 153 days per 5 months (31+30+31+30+31).
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn timestamps() {
        let cases: &[(u64, u64, &str)] = &[
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, 7, "2000-02-29T00:00:00.007Z"),
            (1_709_251_199, 999, "2024-02-29T23:59:59.999Z"),
            (1_234_567_890, 120, "2009-02-13T23:31:30.120Z"),
            (4_102_444_800, 0, "2100-01-01T00:00:00.000Z"),
            (253_402_300_799, 0, "9999-12-31T23:59:59.000Z"),
        ];
        for &(secs, millis, want) in cases {
            assert_eq!(rfc3339_utc(at(secs, millis)), want);
        }
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_previous() {
        // From 1970 through 2370: each day is the previous one plus one day.
        let mut previous = civil_from_days(0);
        assert_eq!(previous, (1970, 1, 1));
        for days in 1..146_097 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let next_day = (y, m, d) == (py, pm, pd + 1);
            let next_month = (y, m, d) == (py, pm + 1, 1);
            let next_year = (y, m, d) == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(
                next_day || next_month || next_year,
                "{previous:?} -> {:?}",
                (y, m, d)
            );
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            assert!(d <= month_len, "{:?}", (y, m, d));
            previous = (y, m, d);
        }
    }

    #[test]
    fn text_lines() {
        let now = at(0, 0);
        let text = |level, msg, fields| format_line(LogFormat::Text, level, msg, fields, now);
        assert_eq!(
            text(
                LogLevel::Error,
                "cannot mount proc on /proc: Permission denied",
                &[]
            ),
            "microbox: cannot mount proc on /proc: Permission denied"
        );
        assert_eq!(
            text(LogLevel::Warn, "no swap accounting", &[("cgroup", "v1")]),
            "microbox: warning: no swap accounting cgroup=v1"
        );
        assert_eq!(
            text(
                LogLevel::Info,
                "sandbox started",
                &[("pid", "42"), ("fs", "/srv/my root"), ("empty", "")]
            ),
            "microbox: info: sandbox started pid=42 fs=\"/srv/my root\" empty=\"\""
        );
        assert_eq!(
            text(
                LogLevel::Error,
                "bad \"path\"\nsecond line",
                &[("path", "a\"b\\c\n")]
            ),
            "microbox: bad \"path\"\\nsecond line path=\"a\\\"b\\\\c\\n\""
        );
        assert_eq!(
            text(LogLevel::Error, "bell\u{7}\u{1b}[31m", &[]),
            "microbox: bell\\u0007\\u001b[31m"
        );
    }

    #[test]
    fn json_lines() {
        let now = at(1_709_251_199, 999);
        assert_eq!(
            format_line(LogFormat::Json, LogLevel::Error, "it failed", &[], now),
            r#"{"ts":"2024-02-29T23:59:59.999Z","level":"error","msg":"it failed"}"#
        );
        assert_eq!(
            format_line(
                LogFormat::Json,
                LogLevel::Warn,
                "say \"hi\"",
                &[
                    ("path", "C:\\x"),
                    ("tab\tkey", "line\nbreak\r\u{0}\u{1f}\u{7f}")
                ],
                now
            ),
            r#"{"ts":"2024-02-29T23:59:59.999Z","level":"warn","msg":"say \"hi\"","path":"C:\\x","tab\tkey":"line\nbreak\r\u0000\u001f\u007f"}"#
        );
        assert_eq!(
            format_line(LogFormat::Json, LogLevel::Info, "", &[("k", "é✓")], now),
            r#"{"ts":"2024-02-29T23:59:59.999Z","level":"info","msg":"","k":"é✓"}"#
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(json_escape("plain"), "plain");
        assert_eq!(json_escape("\"\\/"), "\\\"\\\\/");
        assert_eq!(json_escape("\u{8}\u{c}"), "\\u0008\\u000c");
        // Every char below 256 yields a string with no raw control character and balanced quoting.
        let all: String = (0..=255u8).map(char::from).collect();
        let escaped = json_escape(&all);
        assert!(!escaped.chars().any(|c| u32::from(c) < 0x20));
        assert!(!escaped
            .replace("\\\\", "")
            .replace("\\\"", "")
            .contains('"'));
    }

    #[test]
    fn level_filter() {
        // The only test that touches the statics, so no other test races with it.
        assert!(enabled(LogLevel::Error));
        assert!(!enabled(LogLevel::Warn));
        configure(LogLevel::Warn, LogFormat::Json);
        assert!(enabled(LogLevel::Error) && enabled(LogLevel::Warn));
        assert!(!enabled(LogLevel::Info));
        assert_eq!(current_format(), LogFormat::Json);
        configure(LogLevel::Info, LogFormat::Text);
        assert!(enabled(LogLevel::Info));
        assert_eq!(current_format(), LogFormat::Text);
        configure(LogLevel::Error, LogFormat::Text);
        assert!(!enabled(LogLevel::Warn));
    }
}
