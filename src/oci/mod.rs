//! OCI runtime mode (DESIGN.md section 10): `microbox create|start|state|kill|
//! delete|exec|ps|features` on a bundle, for Podman (conmon) and containerd
//! (the runc shim). The container is built by the same code as a sandbox
//! (namespaces, the mount plan and its executor, capabilities, seccomp,
//! cgroups), driven by config.json instead of the command line; the process
//! model differs (no microbox process stays above the container).
//!
//! One job per file: `cli` (the command line), `json` (the reader),
//! `config` (config.json as data), `state` (records and status), `create`,
//! `process` (the container's process up to execve, shared with `exec`),
//! `exec`, `ops` (start, state, kill, delete, ps, features).

mod cli;
mod config;
mod create;
mod exec;
pub mod json;
mod ops;
mod process;
mod sealed;
mod state;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use crate::error::Result;
use crate::spec::LogFormat;

pub use cli::is_oci_call;

/// The JSON reader, for the fuzz target.
pub fn json_parse(input: &[u8]) -> std::result::Result<json::Value, json::ParseError> {
    json::parse(input)
}

/// config.json's mapper, for the fuzz target: Ok when microbox would run it.
pub fn config_parse(input: &[u8]) -> std::result::Result<(), String> {
    config::parse(input).map(drop).map_err(|e| e.to_string())
}

/// The OCI command line's parser, for the fuzz target.
pub fn cli_parse(args: Vec<OsString>) -> std::result::Result<(), String> {
    cli::parse(args).map(drop).map_err(|e| e.to_string())
}

/// What a failed call exits with (runc's).
const EXIT_FAILED: i32 = 1;

/// Runs one OCI call and returns microbox's exit status. A failure is one
/// line on stderr and, with `--log`, one record in the log file (for
/// Podman exactly one JSON object: it reads the whole file as one).
pub fn main(args: Vec<OsString>) -> i32 {
    let (log, format) = cli::requested_log(&args);
    let result = cli::parse(args).and_then(|(g, op)| run(&g, &op));
    match result {
        Ok(code) => code,
        Err(mut err) => {
            // No `try 'microbox --help'`: the engines, not people, call this.
            err.kind = crate::error::Kind::Runtime;
            let msg = err.to_string();
            crate::log::configure(crate::spec::LogLevel::Error, LogFormat::Text);
            crate::log::error(&msg, &[]);
            if let Some(path) = log {
                write_log(&path, format, &msg);
            }
            EXIT_FAILED
        }
    }
}

fn run(g: &cli::Globals, op: &cli::Op) -> Result<i32> {
    use cli::Op;
    let print = |text: String| {
        let _ = std::io::stdout().write_all(text.as_bytes());
        0
    };
    if matches!(op, Op::Create(_) | Op::Exec(_)) {
        // The OCI path places containers in root's state, cgroups and id
        // ranges; a user's engine (rootless Podman) is not served yet, and
        // half of it working would be worse than a clear no.
        if crate::ns::rootless() {
            return Err(crate::error::Error::runtime(
                "the OCI runtime interface needs root (rootless engines are not supported \
                 yet); without root, run microbox's own command line: microbox -- CMD",
            ));
        }
        // On a host whose root is the initramfs a container's root could
        // only be moved over it and chrooted into, and the engine's config
        // decides capabilities and seccomp: Podman's defaults grant
        // CAP_SYS_CHROOT and allow chroot and unshare, the way back out.
        // microbox's own command line closes those; this path cannot.
        if matches!(op, Op::Create(_)) && crate::fs::root_is_initramfs() {
            return Err(crate::error::Error::runtime(
                "OCI containers are refused on a host whose root is the initramfs: their \
                 root cannot be pivoted away from it, and the engine's capabilities and \
                 seccomp profile (CAP_SYS_CHROOT, chroot, unshare) would let them out; \
                 switch root first, or run microbox's own command line: microbox -- CMD",
            ));
        }
        sealed::ensure_sealed()?;
    }
    match op {
        Op::Create(a) => create::create(g, a).map(|()| 0),
        Op::Start { id } => ops::start(&g.root, id).map(|()| 0),
        Op::State { id } => ops::state(&g.root, id).map(print),
        Op::Kill { id, signal, all } => ops::kill(&g.root, id, *signal, *all).map(|()| 0),
        Op::Delete { id, force } => ops::delete(&g.root, id, *force).map(|()| 0),
        Op::Exec(a) => exec::exec(g, a),
        Op::Ps { id, json } => ops::ps(&g.root, id, *json).map(print),
        Op::Features => Ok(print(ops::features())),
    }
}

/// One error record appended to the engine's log file; a log that cannot
/// be written is left alone (the error is on stderr already).
fn write_log(path: &Path, format: LogFormat, msg: &str) {
    let time = crate::log::rfc3339_utc(std::time::SystemTime::now());
    let line = match format {
        LogFormat::Json => format!(
            "{{\"level\":\"error\",\"msg\":{},\"time\":\"{time}\"}}\n",
            crate::report::json_string(msg)
        ),
        LogFormat::Text => format!(
            "time=\"{time}\" level=error msg={}\n",
            crate::report::json_string(msg)
        ),
    };
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(line.as_bytes());
    }
}
