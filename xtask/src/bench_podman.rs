//! The bench's `podman run --rm IMAGE true` row (issue 13): Debian's Podman
//! (with conmon) starting the busybox image with microbox, crun and runc as
//! its OCI runtime, one run of each in turn so the machine's drift hits all
//! alike. Podman's storage, run and temp directories are the bench's own
//! (vfs driver, cgroupfs manager, no network), removed afterwards. Runs in
//! the bench's private namespaces, where crun accepts this hybrid host.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/microbox-bench:latest";

pub struct Row {
    pub runtime: String,
    pub samples: Vec<Duration>,
    /// Why the runtime could not run the row (its first error line).
    pub failed: Option<String>,
}

struct Podman {
    dir: PathBuf,
    conf: PathBuf,
}

impl Podman {
    fn cmd(&self, runtime: &Path) -> Command {
        let mut cmd = Command::new("podman");
        // conmon may write files (`oom`) into its working directory.
        cmd.current_dir(&self.dir)
            .env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .arg("--runtime")
            .arg(runtime)
            .stdin(Stdio::null());
        cmd
    }
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// None when Podman is not installed.
pub fn measure(work: &Path, microbox: &Path, image: &Path, runs: usize) -> Option<Vec<Row>> {
    if !have("podman") {
        println!("bench: podman row skipped: podman is not installed (apt-get install podman)");
        return None;
    }
    let dir = work.join("bench-podman");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let conf = dir.join("containers.conf");
    // Podman's default nofile and nproc limits are above what root here may
    // set (no CAP_SYS_RESOURCE): no runtime could apply them.
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
         [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
         runtime_supports_json = [\"crun\", \"runc\", \"microbox\"]\n",
    )
    .ok()?;
    let podman = Podman { dir, conf };
    let tar = podman.dir.join("image.tar");
    let packed = Command::new("tar")
        .arg("-C")
        .arg(image)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .is_ok_and(|s| s.success());
    let imported = packed
        && podman
            .cmd(microbox)
            .arg("import")
            .arg(&tar)
            .arg(IMAGE)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !imported {
        println!("bench: podman row skipped: podman import of the busybox image failed");
        return None;
    }
    let mut rows: Vec<(PathBuf, Row)> = [
        microbox.to_path_buf(),
        "/usr/bin/crun".into(),
        "/usr/bin/runc".into(),
    ]
    .into_iter()
    .filter(|p| p.is_file())
    .map(|p| {
        let runtime = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (
            p,
            Row {
                runtime,
                samples: Vec::new(),
                failed: None,
            },
        )
    })
    .collect();
    for _ in 0..runs {
        for (path, row) in rows.iter_mut().filter(|(_, r)| r.failed.is_none()) {
            let start = Instant::now();
            let out = podman
                .cmd(path)
                .args(["run", "--rm", "--network", "none", IMAGE, "/bin/true"])
                .output();
            let took = start.elapsed();
            match out {
                Ok(out) if out.status.success() => row.samples.push(took),
                Ok(out) => {
                    let text = String::from_utf8_lossy(&out.stderr);
                    row.failed = Some(text.lines().next().unwrap_or("failed").to_string());
                }
                Err(e) => row.failed = Some(e.to_string()),
            }
        }
    }
    let _ = podman.cmd(microbox).args(["rm", "-af", "-t", "0"]).output();
    let _ = podman
        .cmd(microbox)
        .args(["system", "reset", "-f"])
        .output();
    let _ = std::fs::remove_dir_all(&podman.dir);
    Some(rows.into_iter().map(|(_, row)| row).collect())
}
