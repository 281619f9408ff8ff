//! Where the report goes, opened before the sandbox starts (so a bad path is
//! a clear error, not a lost report) and written once after it ends.
//!
//! A file is written so that FILE is never seen half-written, even if
//! microbox is killed meanwhile: the report goes into an unnamed file
//! (O_TMPFILE) in FILE's directory, which is linked as FILE when complete;
//! over an existing FILE it gets a temporary name first and is renamed onto
//! FILE at once. Killed before that, nothing is left; killed between that
//! link and the rename, a complete `.FILE.*.tmp`.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};

use crate::error::{Error, Result};
use crate::spec::ReportTo;

pub(crate) enum Sink {
    File {
        /// FILE's directory, opened once before the sandbox starts: FILE may
        /// lie in storage the sandbox writes (a `--mount-rw`), and a
        /// directory it swaps for a symlink later must not send the report,
        /// written as root, anywhere else.
        dir: OwnedFd,
        name: OsString,
        unnamed: OwnedFd,
        path: PathBuf,
    },
    Fd(OwnedFd),
}

impl Sink {
    pub fn open(to: &ReportTo) -> Result<Sink> {
        match to {
            ReportTo::File(path) => {
                let dir_path = match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                let name = path
                    .file_name()
                    .ok_or_else(|| {
                        Error::failed("write the report to", "not a file name").on(path.display())
                    })?
                    .to_os_string();
                let dir = rustix::fs::open(
                    dir_path,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::os("open the report's directory", e).on(dir_path.display()))?;
                let unnamed = rustix::fs::openat(
                    &dir,
                    ".",
                    OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map_err(|e| {
                    let err = Error::os("create the report in", e).on(dir_path.display());
                    match e {
                        rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR => err.hint(
                            "this file system cannot make unnamed files; use another directory or --report-fd",
                        ),
                        _ => err,
                    }
                })?;
                Ok(Sink::File {
                    dir,
                    name,
                    unnamed,
                    path: path.clone(),
                })
            }
            ReportTo::Fd(n) => crate::sys::fd::duplicate_inherited(*n)
                .map(Sink::Fd)
                .map_err(|e| Error::os("use the report descriptor", e).on(n.to_string())),
        }
    }

    /// Writes `json` and a newline; for a file, then gives it its name.
    pub fn write(self, json: &str) -> Result<()> {
        let line = format!("{json}\n");
        match self {
            Sink::Fd(fd) => std::fs::File::from(fd)
                .write_all(line.as_bytes())
                .map_err(|e| Error::os("write the report to descriptor", e)),
            Sink::File {
                dir,
                name,
                unnamed,
                path,
            } => {
                let mut file = std::fs::File::from(unnamed);
                file.write_all(line.as_bytes())
                    .map_err(|e| Error::os("write the report", e).on(path.display()))?;
                let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
                let link = |to: &OsStr| {
                    rustix::fs::linkat(CWD, proc_path.as_str(), &dir, to, AtFlags::SYMLINK_FOLLOW)
                };
                // A new name is one link. Over an old report, a temporary
                // name and a rename (which replaces a symlink there, never
                // follows it), and ext4 makes that rename wait for the data
                // to reach the disk (auto_da_alloc): 0.3 ms here.
                match link(&name) {
                    Err(rustix::io::Errno::EXIST) => {}
                    other => {
                        return other
                            .map_err(|e| Error::os("name the report", e).on(path.display()))
                    }
                }
                let temporary = temporary_name(&name);
                link(&temporary).map_err(|e| {
                    Error::os("name the report", e).on(path.with_file_name(&temporary).display())
                })?;
                rustix::fs::renameat(&dir, &temporary, &dir, &name).map_err(|e| {
                    let _ = rustix::fs::unlinkat(&dir, &temporary, AtFlags::empty());
                    Error::os("rename the report to", e).on(path.display())
                })
            }
        }
    }
}

/// `.NAME.<random>.tmp`, in the same directory.
fn temporary_name(name: &OsStr) -> OsString {
    let mut random = [0u8; 6];
    let _ = rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty());
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = OsString::from(".");
    out.push(name);
    out.push(format!(".{hex}.tmp"));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn a_file_report_appears_whole_and_replaces_an_old_one() {
        let dir = crate::test_dir("report-sink");
        let path = dir.join("run.json");
        std::fs::write(&path, "old").unwrap();
        let sink = Sink::open(&ReportTo::File(path.clone())).unwrap();
        // Open but not written: nothing new in the directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        sink.write("{\"version\":1}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"version\":1}\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_meanwhile_gets_nothing() {
        let base = crate::test_dir("report-swap");
        let (dir, elsewhere) = (base.join("out"), base.join("elsewhere"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(&elsewhere).unwrap();
        let sink = Sink::open(&ReportTo::File(dir.join("run.json"))).unwrap();
        // What a sandbox that writes base could do while it runs.
        std::fs::rename(&dir, base.join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        sink.write("{}").unwrap();
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_to_string(base.join("moved/run.json")).unwrap(),
            "{}\n"
        );
        // And a symlink put in FILE's place is replaced, not followed.
        let victim = elsewhere.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let moved = base.join("moved");
        let sink = Sink::open(&ReportTo::File(moved.join("link.json"))).unwrap();
        std::os::unix::fs::symlink(&victim, moved.join("link.json")).unwrap();
        sink.write("{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(moved.join("link.json"))
            .unwrap()
            .is_symlink());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_before_anything_runs() {
        let err = Sink::open(&ReportTo::File("/nonexistent-microbox/r.json".into()))
            .err()
            .unwrap();
        let line = err.to_string();
        assert!(line.contains("/nonexistent-microbox"), "{line}");
        assert!(line.contains("No such file"), "{line}");
    }

    #[test]
    fn a_closed_descriptor_is_refused() {
        let err = Sink::open(&ReportTo::Fd(1_000_000)).err().unwrap();
        assert!(err.to_string().contains("1000000"), "{err}");
    }
}
