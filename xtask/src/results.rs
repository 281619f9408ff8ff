//! Counting libtest results across the test layers and printing the summary.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.ignored > 0 {
            write!(f, ", {} ignored", self.ignored)?;
        }
        Ok(())
    }
}

/// Removes ANSI escape sequences and carriage returns (serial output is CRLF,
/// and cargo may colour its output).
pub fn clean_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameters, then one final byte in 0x40..=0x7e.
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Reads libtest's `test result: ok. 3 passed; 1 failed; 2 ignored; ...` line.
pub fn parse_result_line(line: &str) -> Option<Counts> {
    let line = clean_line(line);
    let rest = &line[line.find("test result: ")? + "test result: ".len()..];
    let (_, fields) = rest.split_once(". ")?;
    let mut counts = Counts::default();
    let mut seen = 0;
    for field in fields.split(';') {
        let mut words = field.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => counts.passed = n,
            "failed" => counts.failed = n,
            "ignored" => counts.ignored = n,
            _ => continue,
        }
        seen += 1;
    }
    (seen == 3).then_some(counts)
}

/// Runs a command with stdout piped through us: every line is echoed as it
/// comes and libtest's result lines are summed.
pub fn run_counting(mut cmd: Command) -> Result<(ExitStatus, Counts), String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let mut counts = Counts::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).split(b'\n') {
            let line = line.map_err(|e| format!("reading output of {shown}: {e}"))?;
            let text = String::from_utf8_lossy(&line);
            // println!, not a raw stdout handle: libtest captures it in our
            // own unit tests, so their sample lines never reach an outer count.
            println!("{text}");
            if let Some(c) = parse_result_line(&text) {
                counts.add(c);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {shown}: {e}"))?;
    Ok((status, counts))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    Ok,
    /// Ran, and something failed; the text says what beyond the counts.
    Failed(String),
    /// Did not run, with the reason (never counted as passed).
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub name: &'static str,
    pub counts: Counts,
    pub status: LayerStatus,
    pub seconds: f64,
}

impl Layer {
    /// A failure that produced no failed test (a build error, a crash, a VM
    /// that never reported) still counts as one, so a red run never reads "0 failed".
    pub fn failed_total(&self) -> u64 {
        match self.status {
            LayerStatus::Failed(_) if self.counts.failed == 0 => 1,
            _ => self.counts.failed,
        }
    }

    pub fn line(&self) -> String {
        let counts = Counts {
            failed: self.failed_total(),
            ..self.counts
        };
        match &self.status {
            LayerStatus::Ok => format!("{:>11}: {counts} ({:.1} s)", self.name, self.seconds),
            LayerStatus::Failed(why) => {
                format!(
                    "{:>11}: {counts} ({:.1} s) FAILED: {why}",
                    self.name, self.seconds
                )
            }
            LayerStatus::Skipped(why) => format!("{:>11}: skipped: {why}", self.name),
        }
    }
}

/// The closing line: `N passed, N failed` plus ignored tests and skipped layers.
pub fn summary(layers: &[Layer]) -> String {
    let mut total = Counts::default();
    for l in layers {
        total.add(Counts {
            failed: l.failed_total(),
            ..l.counts
        });
    }
    let skipped: Vec<&str> = layers
        .iter()
        .filter(|l| matches!(l.status, LayerStatus::Skipped(_)))
        .map(|l| l.name)
        .collect();
    let mut line = total.to_string();
    if !skipped.is_empty() {
        line.push_str(&format!(
            ", {} layer(s) skipped ({})",
            skipped.len(),
            skipped.join(", ")
        ));
    }
    line
}

pub fn any_failed(layers: &[Layer]) -> bool {
    layers.iter().any(|l| l.failed_total() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_lines() {
        let ok = "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.02s";
        assert_eq!(
            parse_result_line(ok),
            Some(Counts {
                passed: 12,
                failed: 0,
                ignored: 3
            })
        );
        let bad = "\x1b[0mtest result: \x1b[31mFAILED\x1b[0m. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\r";
        assert_eq!(
            parse_result_line(bad),
            Some(Counts {
                passed: 1,
                failed: 2,
                ignored: 0
            })
        );
        assert_eq!(parse_result_line("running 3 tests"), None);
        assert_eq!(parse_result_line("test result: garbage"), None);
    }

    #[test]
    fn summary_counts_layer_errors_and_skips() {
        let layers = [
            Layer {
                name: "unit",
                counts: Counts {
                    passed: 5,
                    failed: 0,
                    ignored: 1,
                },
                status: LayerStatus::Ok,
                seconds: 1.0,
            },
            Layer {
                name: "host",
                counts: Counts::default(),
                status: LayerStatus::Failed("build failed".into()),
                seconds: 1.0,
            },
            Layer {
                name: "vm",
                counts: Counts::default(),
                status: LayerStatus::Skipped("no qemu".into()),
                seconds: 0.0,
            },
        ];
        assert_eq!(
            summary(&layers),
            "5 passed, 1 failed, 1 ignored, 1 layer(s) skipped (vm)"
        );
        assert!(any_failed(&layers));
        assert!(layers[2].line().contains("skipped: no qemu"));
        assert!(!any_failed(&layers[..1]));
    }

    #[test]
    fn counts_streamed_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'test result: ok. 2 passed; 0 failed; 0 ignored;'; echo 'test result: FAILED. 1 passed; 1 failed; 0 ignored;'; exit 3"]);
        let (status, counts) = run_counting(cmd).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(
            counts,
            Counts {
                passed: 3,
                failed: 1,
                ignored: 0
            }
        );
    }
}
