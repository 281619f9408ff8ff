//! Per-container state under `--root`: `<root>/<id>/` (mode 0700) holds
//! `record.json` (what every later call needs: pid, start time, bundle,
//! cgroup, written atomically) and `exec.fifo` while the container is
//! created but not started. Each call holds an exclusive flock on the
//! directory for its whole run, so two calls on one container take turns.
//!
//! Status is derived at query time, never stored: the process is alive
//! (its /proc entry has the start time recorded at create, so a reused pid
//! reads as stopped) and the fifo exists: created; alive without it:
//! running; else stopped.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation, Mode, OFlags};

use super::json::{self, Value};
use crate::cgroup::container::ContainerCgroup;
use crate::error::{Error, Result};
use crate::report::json_string;

pub(crate) const FIFO: &str = "exec.fifo";
const RECORD: &str = "record.json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub id: String,
    pub oci_version: String,
    pub pid: i32,
    /// Field 22 of /proc/PID/stat at create.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub created: String,
    pub cgroup: ContainerCgroup,
    /// The container has a pid namespace of its own: its processes end with
    /// its PID 1. Without one, `kill --all` and `delete` signal the cgroup.
    pub own_pid_ns: bool,
    pub systemd_cgroup: bool,
    pub annotations: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Running,
    Stopped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// One container's directory, locked.
pub(crate) struct ContainerDir {
    pub path: PathBuf,
    _lock: OwnedFd,
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::usage(format!("container {id} does not exist"))
}

fn lock(path: &Path) -> Result<OwnedFd> {
    let fd = rustix::fs::open(
        path,
        // The container's own directory, never a symlink planted there.
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os("open", e).on(path.display()))?;
    flock(&fd, FlockOperation::LockExclusive)
        .map_err(|e| Error::os("lock", e).on(path.display()))?;
    Ok(fd)
}

impl ContainerDir {
    /// Makes `<root>/<id>`; an existing one is the engine's id collision.
    pub fn create(root: &Path, id: &str) -> Result<ContainerDir> {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|e| Error::os("create the state directory", e).on(root.display()))?;
        }
        check_root(root)?;
        let path = root.join(id);
        match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {
                return Err(Error::usage(format!("container {id} already exists")))
            }
            Err(e) => return Err(Error::os("create the state directory", e).on(path.display())),
        }
        let lock = lock(&path)?;
        Ok(ContainerDir { path, _lock: lock })
    }

    /// Opens and locks `<root>/<id>`; a missing one "does not exist" (the
    /// words Podman and containerd look for).
    pub fn open(root: &Path, id: &str) -> Result<ContainerDir> {
        Self::open_if_exists(root, id)?.ok_or_else(|| not_found(id))
    }

    pub fn open_if_exists(root: &Path, id: &str) -> Result<Option<ContainerDir>> {
        if !root.exists() {
            return Ok(None);
        }
        check_root(root)?;
        let path = root.join(id);
        match lock(&path) {
            // Deleted while we waited for the lock: gone.
            Ok(_) if !path.exists() => Ok(None),
            Ok(lock) => Ok(Some(ContainerDir { path, _lock: lock })),
            Err(err) if err.errno == Some(libc::ENOENT) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The lock's fd number, for the container's process to close: it is
    /// a fork of create, and an inherited copy would hold the lock for as
    /// long as it waits for `start`.
    pub fn lock_fd(&self) -> u32 {
        u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&self._lock)).unwrap_or(u32::MAX)
    }

    /// The config.json create applied, kept for `exec`.
    pub fn kept_config(&self) -> PathBuf {
        self.path.join("config.json")
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(FIFO)
    }

    pub fn write_record(&self, record: &Record) -> Result<()> {
        write_atomically(&self.path.join(RECORD), to_json(record).as_bytes())
    }

    /// None: create has not written it (yet, or it died half-way).
    pub fn read_record(&self) -> Result<Option<Record>> {
        let path = self.path.join(RECORD);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::os("read", err).on(path.display())),
        };
        from_json(&text).map(Some).ok_or_else(|| {
            Error::runtime(format!(
                "{}: not a microbox container record",
                path.display()
            ))
        })
    }

    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.path)
            .map_err(|e| Error::os("remove", e).on(self.path.display()))
    }

    pub fn status(&self, record: &Record) -> Status {
        if !alive(record.pid, record.start_time) {
            Status::Stopped
        } else if self.fifo().exists() {
            Status::Created
        } else {
            Status::Running
        }
    }
}

/// The state root must be this user's and writable by nobody else: a
/// record planted in it would steer what root kills, removes and joins.
fn check_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(root).map_err(|e| Error::os("inspect", e).on(root.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(Error::runtime(format!(
            "the state directory {} is not owned by uid {me} and closed to others (mode {:o}): refusing to use it",
            root.display(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Writes `path` through a temporary file in its directory and a rename:
/// a reader sees the old content or the new, never half of it.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    LaterFile::open(path)?.write(bytes)
}

/// A file to be written later by name below its directory, opened now:
/// `exec` writes its pid file after joining the container's mount
/// namespace, where the host path means nothing.
pub(crate) struct LaterFile {
    dir: OwnedFd,
    name: std::ffi::OsString,
}

impl LaterFile {
    pub fn open(path: &Path) -> Result<LaterFile> {
        let (parent, name) = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => (
                if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                },
                name,
            ),
            _ => return Err(Error::usage(format!("{}: not a file name", path.display()))),
        };
        let dir = rustix::fs::open(
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::os("open", e).on(parent.display()))?;
        Ok(LaterFile {
            dir,
            name: name.to_os_string(),
        })
    }

    /// Through a temporary name and a rename, as [`write_atomically`].
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        let mut tmp = std::ffi::OsString::from(".");
        tmp.push(&self.name);
        tmp.push(format!(
            ".{}.tmp",
            rustix::process::getpid().as_raw_nonzero()
        ));
        let shown = Path::new(&self.name).display();
        let fd = rustix::fs::openat(
            &self.dir,
            tmp.as_os_str(),
            // A new file only: a symlink or file planted at the name in a
            // directory others may write is never followed or reused.
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| Error::os("write", e).on(&shown))?;
        rustix::io::write(&fd, bytes).map_err(|e| Error::os("write", e).on(&shown))?;
        rustix::fs::renameat(&self.dir, tmp.as_os_str(), &self.dir, self.name.as_os_str())
            .map_err(|e| Error::os("rename into place", e).on(&shown))
    }
}

/// The process's start time (field 22 of /proc/PID/stat) and whether it is
/// a zombie; None when there is no such process.
pub(crate) fn process_start(pid: i32) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start behind the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    Some((fields.get(19)?.parse().ok()?, zombie))
}

/// The recorded process is still the container's and not a zombie.
pub(crate) fn alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && matches!(process_start(pid), Some((start, false)) if start == start_time)
}

fn to_json(r: &Record) -> String {
    let dirs: Vec<String> = r
        .cgroup
        .dirs
        .iter()
        .map(|d| json_string(&d.to_string_lossy()))
        .collect();
    format!(
        "{{\"id\":{},\"ociVersion\":{},\"pid\":{},\"startTime\":{},\"bundle\":{},\"root\":{},\"created\":{},\
         \"cgroupV2\":{},\"cgroupDirs\":[{}],\"ownPidNamespace\":{},\"systemdCgroup\":{},\"annotations\":{}}}\n",
        json_string(&r.id),
        json_string(&r.oci_version),
        r.pid,
        r.start_time,
        json_string(&r.bundle.to_string_lossy()),
        json_string(&r.root.to_string_lossy()),
        json_string(&r.created),
        r.cgroup.v2,
        dirs.join(","),
        r.own_pid_ns,
        r.systemd_cgroup,
        annotations_json(&r.annotations),
    )
}

pub(crate) fn annotations_json(annotations: &[(String, String)]) -> String {
    let members: Vec<String> = annotations
        .iter()
        .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
        .collect();
    format!("{{{}}}", members.join(","))
}

fn from_json(text: &[u8]) -> Option<Record> {
    let v = json::parse(text).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let b = |k: &str| v.get(k).and_then(Value::as_bool);
    let dirs = v
        .get("cgroupDirs")?
        .as_array()?
        .iter()
        .map(|d| d.as_str().map(PathBuf::from))
        .collect::<Option<Vec<_>>>()?;
    let annotations = v
        .get("annotations")?
        .as_object()?
        .iter()
        .map(|(k, val)| Some((k.clone(), val.as_str()?.to_string())))
        .collect::<Option<Vec<_>>>()?;
    Some(Record {
        id: s("id")?,
        oci_version: s("ociVersion")?,
        pid: i32::try_from(v.get("pid")?.as_i64()?).ok()?,
        start_time: v.get("startTime")?.as_u64()?,
        bundle: PathBuf::from(s("bundle")?),
        root: PathBuf::from(s("root")?),
        created: s("created")?,
        cgroup: ContainerCgroup {
            v2: b("cgroupV2")?,
            dirs,
        },
        own_pid_ns: b("ownPidNamespace")?,
        systemd_cgroup: b("systemdCgroup")?,
        annotations,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = Record {
            id: "c\"1".into(),
            oci_version: "1.0.2".into(),
            pid: 42,
            start_time: 123_456,
            bundle: "/b ü".into(),
            root: "/b/rootfs".into(),
            created: "2026-12-07T00:00:00Z".into(),
            cgroup: ContainerCgroup {
                v2: false,
                dirs: vec![
                    "/sys/fs/cgroup/pids/x".into(),
                    "/sys/fs/cgroup/memory/x".into(),
                ],
            },
            own_pid_ns: true,
            systemd_cgroup: false,
            annotations: vec![("a".into(), "b\n".into())],
        };
        assert_eq!(from_json(to_json(&record).as_bytes()), Some(record));
        assert_eq!(from_json(b"{}"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let (start, zombie) = process_start(me).unwrap();
        assert!(!zombie);
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
        assert!(!alive(0, start));
    }
}
