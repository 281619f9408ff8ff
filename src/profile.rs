//! Start-up profile marks for `cargo xtask bench --profile`: with
//! MICROBOX_PROFILE=1 in microbox's environment, each process of a start
//! (supervisor, init, the clone that sets the sandbox up, and the command) writes one stderr line per phase it
//! finishes: `microbox-profile WHO PHASE MONOTONIC_NS CPU_NS`, CPU being the
//! process's own. Off (the default) a mark is one relaxed atomic load.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::time::{clock_gettime, ClockId};

static ON: AtomicBool = AtomicBool::new(false);

/// Reads MICROBOX_PROFILE once, at the start of main.
pub fn configure() {
    let on = std::env::var_os("MICROBOX_PROFILE").is_some_and(|v| v == "1");
    ON.store(on, Ordering::Relaxed);
}

fn ns(clock: ClockId) -> u128 {
    let t = clock_gettime(clock);
    // Both clocks count up from zero: never negative.
    u128::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u128::try_from(t.tv_nsec).unwrap_or(0)
}

/// Marks the end of `phase` in process `who`.
pub fn mark(who: &str, phase: &str) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let line = format!(
        "microbox-profile {who} {phase} {} {}\n",
        ns(ClockId::Monotonic),
        ns(ClockId::ProcessCPUTime)
    );
    // One write: lines of the four processes never interleave mid-line.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
