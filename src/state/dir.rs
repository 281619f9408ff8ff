//! Where microbox keeps its state for the calling user. Host root's sandboxes
//! live under `/run/microbox`; a user without root gets a directory of their
//! own (issue 14), so that users neither see nor disturb each other's locks
//! and leases, and nothing of theirs is written where root's sandboxes live.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Host root's state directory.
pub const ROOT_RUN_DIR: &str = "/run/microbox";

/// The calling user's state directory, chosen once per process (see
/// [`choose`]). Unit tests see root's, whoever runs them: the mount plans
/// they compare name it.
pub fn run_dir() -> &'static str {
    if cfg!(test) {
        return ROOT_RUN_DIR;
    }
    static DIR: OnceLock<String> = OnceLock::new();
    DIR.get_or_init(|| {
        let uid = rustix::process::geteuid().as_raw();
        let xdg = std::env::var("XDG_RUNTIME_DIR").ok();
        let run_user = format!("/run/user/{uid}");
        let owned = |path: &str| {
            std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == uid)
        };
        choose(uid, xdg.as_deref(), owned(&run_user))
    })
}

/// Root: `/run/microbox`. A user: `$XDG_RUNTIME_DIR/microbox` when that is
/// set to an absolute path, else `/run/user/UID/microbox` when the user owns
/// `/run/user/UID` (systemd's, even outside a login session), else
/// `/tmp/microbox-UID`, which [`ensure`] makes private.
pub fn choose(uid: u32, xdg_runtime_dir: Option<&str>, owns_run_user: bool) -> String {
    if uid == 0 {
        return ROOT_RUN_DIR.to_string();
    }
    match xdg_runtime_dir {
        Some(dir) if dir.starts_with('/') => format!("{}/microbox", dir.trim_end_matches('/')),
        _ if owns_run_user => format!("/run/user/{uid}/microbox"),
        _ => format!("/tmp/microbox-{uid}"),
    }
}

/// For a user: makes the state directory (mode 0700) if it is missing and
/// checks that it is theirs alone. A directory under a shared /tmp may have
/// been made by someone else first, to watch or feed the user's locks: that
/// is refused, never used. Root's is made on demand by the files in it.
pub fn ensure() -> Result<()> {
    let dir = run_dir();
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        return Ok(());
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            let parent = Path::new(dir).parent().map(Path::display);
            return Err(Error::os("create microbox's state directory", err)
                .on(dir)
                .hint(format!(
                    "set XDG_RUNTIME_DIR to a directory of yours (now {:?}), \
                     or make {} writable",
                    std::env::var_os("XDG_RUNTIME_DIR").unwrap_or_default(),
                    parent.map_or_else(String::new, |p| p.to_string()),
                )));
        }
    }
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::os("inspect microbox's state directory", e).on(dir))?;
    let parent = Path::new(dir).parent().unwrap_or(Path::new("/"));
    let parent_meta = std::fs::metadata(parent)
        .map_err(|e| Error::os("inspect microbox's state directory", e).on(parent.display()))?;
    check_private(&meta, uid)
        .and_then(|()| check_parent(&parent_meta))
        .map_err(|why| {
            Error::failed("use microbox's state directory", why)
                .on(dir)
                .hint("remove it, or set XDG_RUNTIME_DIR to a directory of yours")
        })
}

/// Why a state directory in the directory of `meta` could be swapped under
/// us, if it could: anyone who may write a directory may rename what is in
/// it, unless it is sticky (as /tmp is).
fn check_parent(meta: &std::fs::Metadata) -> std::result::Result<(), String> {
    let mode = meta.mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "its parent directory is writable by others and not sticky (mode {:o}): \
             they could replace it",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Why `meta` is not a directory only `uid` can use, if it is not.
fn check_private(meta: &std::fs::Metadata, uid: u32) -> std::result::Result<(), String> {
    if !meta.file_type().is_dir() {
        return Err("it is not a directory (a symlink is not followed)".into());
    }
    if meta.uid() != uid {
        return Err(format!(
            "it belongs to uid {}, not to you ({uid})",
            meta.uid()
        ));
    }
    // Not even readable: the lock files name the user's sandboxes.
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "others may use it (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn each_user_gets_a_directory_of_their_own() {
        assert_eq!(choose(0, Some("/run/user/0"), true), "/run/microbox");
        assert_eq!(
            choose(1000, Some("/run/user/1000/"), true),
            "/run/user/1000/microbox"
        );
        // A relative XDG_RUNTIME_DIR is ignored, as the XDG spec asks.
        assert_eq!(choose(1000, Some("tmp"), true), "/run/user/1000/microbox");
        assert_eq!(choose(1000, None, false), "/tmp/microbox-1000");
    }

    #[test]
    fn a_directory_of_someone_else_or_open_to_others_is_refused() {
        let dir = crate::test_dir("state-dir-private");
        let uid = rustix::process::geteuid().as_raw();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let meta = || std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(check_private(&meta(), uid), Ok(()));
        assert!(check_private(&meta(), uid + 1)
            .unwrap_err()
            .contains("belongs to uid"));
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        assert!(check_private(&meta(), uid)
            .unwrap_err()
            .contains("mode 777"));
        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let linked = std::fs::symlink_metadata(&link).unwrap();
        assert!(check_private(&linked, uid).unwrap_err().contains("symlink"));
        // Its parent: open to others only with the sticky bit.
        for (mode, ok) in [
            (0o755, true),
            (0o1777, true),
            (0o777, false),
            (0o775, false),
        ] {
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            assert_eq!(check_parent(&meta()).is_ok(), ok, "{mode:o}");
        }
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
