//! `cargo xtask bench --profile [--runs N]`: where one start spends its time.
//! microbox runs `/bin/true` N times with MICROBOX_PROFILE=1, each of its
//! processes (supervisor; init, the clone that sets the sandbox up; the command) marking the end of its
//! phases (src/profile.rs); the median per phase is printed, wall time from
//! the previous mark of any process and CPU time from the previous mark of
//! the same one. Then `perf record -a -g` over as many starts shows where
//! the kernel's time goes (Debian's linux-perf), for the defaults and for
//! `--net host`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub who: String,
    pub phase: String,
    pub wall_ns: u128,
    pub cpu_ns: u128,
}

/// The `microbox-profile WHO PHASE WALL CPU` lines of one run's stderr.
pub fn parse_marks(stderr: &str) -> Vec<Mark> {
    stderr
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("microbox-profile ")?.split_whitespace();
            Some(Mark {
                who: w.next()?.to_string(),
                phase: w.next()?.to_string(),
                wall_ns: w.next()?.parse().ok()?,
                cpu_ns: w.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// (who, phase, wall since the previous mark, CPU since the same process's
/// previous mark, or since its birth) in time order.
pub fn phases(mut marks: Vec<Mark>) -> Vec<(String, String, u128, u128)> {
    marks.sort_by_key(|m| m.wall_ns);
    let mut last_cpu: BTreeMap<String, u128> = BTreeMap::new();
    let mut prev_wall = marks.first().map_or(0, |m| m.wall_ns);
    marks
        .into_iter()
        .map(|m| {
            let wall = m.wall_ns.saturating_sub(prev_wall);
            prev_wall = m.wall_ns;
            let cpu = m.cpu_ns.saturating_sub(*last_cpu.get(&m.who).unwrap_or(&0));
            last_cpu.insert(m.who.clone(), m.cpu_ns);
            (m.who, m.phase, wall, cpu)
        })
        .collect()
}

fn median(v: &mut [u128]) -> u128 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

pub fn run(microbox: &Path, image: &Path, runs: usize, out_dir: &Path) -> Result<(), String> {
    let configs: [(&str, &[&str]); 2] = [("defaults", &[]), ("--net host", &["--net", "host"])];
    for (label, opts) in configs {
        let mut order: Vec<(String, String)> = Vec::new();
        let mut samples: BTreeMap<(String, String), (Vec<u128>, Vec<u128>)> = BTreeMap::new();
        for _ in 0..runs {
            let out = Command::new(microbox)
                .args(opts)
                .arg("--fs")
                .arg(image)
                .args(["--", "/bin/true"])
                .env("MICROBOX_PROFILE", "1")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", microbox.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "profile run failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            for (who, phase, wall, cpu) in
                phases(parse_marks(&String::from_utf8_lossy(&out.stderr)))
            {
                let key = (who, phase);
                if !order.contains(&key) {
                    order.push(key.clone());
                }
                let entry = samples.entry(key).or_default();
                entry.0.push(wall);
                entry.1.push(cpu);
            }
        }
        println!("profile: microbox {label} --fs IMAGE -- /bin/true, {runs} runs, medians (us)");
        println!(
            "{:<11} {:<16} {:>9} {:>9}",
            "process", "phase", "wall", "cpu"
        );
        let (mut wall_sum, mut cpu_sum) = (0, 0);
        for key in &order {
            let Some((walls, cpus)) = samples.get_mut(key) else {
                continue;
            };
            let (w, c) = (median(walls), median(cpus));
            wall_sum += w;
            cpu_sum += c;
            println!(
                "{:<11} {:<16} {:>9.1} {:>9.1}",
                key.0,
                key.1,
                w as f64 / 1e3,
                c as f64 / 1e3
            );
        }
        println!(
            "{:<11} {:<16} {:>9.1} {:>9.1}  (sums of medians; the command's exec and run are in the supervisor's wait)\n",
            "", "total", wall_sum as f64 / 1e3, cpu_sum as f64 / 1e3
        );
        perf_view(microbox, image, opts, runs, out_dir, label);
    }
    Ok(())
}

/// `perf record -a -g` over `runs` starts, then the top kernel symbols.
fn perf_view(
    microbox: &Path,
    image: &Path,
    opts: &[&str],
    runs: usize,
    out_dir: &Path,
    label: &str,
) {
    let data = out_dir.join(format!("perf-{}.data", label.replace([' ', '-'], "")));
    let _ = std::fs::create_dir_all(out_dir);
    let script = format!(
        "i=0; while [ $i -lt {runs} ]; do {} {} --fs {} -- /bin/true || exit 1; i=$((i+1)); done",
        microbox.display(),
        opts.join(" "),
        image.display()
    );
    let recorded = Command::new("perf")
        .args(["record", "-q", "-a", "-g", "-o"])
        .arg(&data)
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match recorded {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            println!(
                "perf: record failed: {} (apt-get install linux-perf)\n",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return;
        }
        Err(e) => {
            println!("perf: not run ({e}; apt-get install linux-perf)\n");
            return;
        }
    }
    let report = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "-g",
            "none",
            "--sort",
            "comm,sym",
            "--percent-limit",
            "0.7",
            "-i",
        ])
        .arg(&data)
        .stderr(Stdio::null())
        .output();
    println!(
        "perf: whole machine over {runs} starts of microbox {label}, by process and symbol, above 0.7% of all samples (idle left out):"
    );
    if let Ok(o) = report {
        for line in String::from_utf8_lossy(&o.stdout)
            .lines()
            // The idle loop (swapper) is the machine waiting, not work.
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.contains("swapper"))
            .take(30)
        {
            println!("  {line}");
        }
    }
    println!("  (data: {})\n", data.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_take_wall_from_any_and_cpu_from_the_same_process() {
        let text = "noise\nmicrobox-profile supervisor exec 1000 500\n\
                    microbox-profile child clone 3000 100\n\
                    microbox-profile supervisor clone 2500 900\n\
                    microbox-profile supervisor teardown 9000 1400\n";
        let p = phases(parse_marks(text));
        let got: Vec<(&str, &str, u128, u128)> = p
            .iter()
            .map(|(w, ph, a, b)| (w.as_str(), ph.as_str(), *a, *b))
            .collect();
        assert_eq!(
            got,
            [
                ("supervisor", "exec", 0, 500),
                ("supervisor", "clone", 1500, 400),
                ("child", "clone", 500, 100),
                ("supervisor", "teardown", 6000, 500),
            ]
        );
    }
}
