//! CVE-2019-5736 for OCI containers: `create` and `exec` re-execute from a
//! sealed memfd copy of microbox before they do anything else. Without a
//! user namespace the container's root is host root, and a container
//! process reaching a microbox process's `/proc/PID/exe` (an `args[0]` or
//! a `#!` line that is `/proc/self/exe` makes the container's own process
//! run microbox again, dumpable) could open the host's binary for writing
//! once it is no longer busy. With the copy, that link names a sealed
//! memfd, which cannot be written at all.
//!
//! Cost: one copy of the binary into memory and one execve per create and
//! exec; sandboxes (`microbox -- COMMAND`) are not affected (their ids are
//! shifted, so sandbox root cannot write the host's binary).

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;

use rustix::fs::{
    fcntl_add_seals, fcntl_get_seals, memfd_create, MemfdFlags, Mode, OFlags, SealFlags,
};

use crate::error::{Error, Result};

const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Returns when running from the sealed copy; otherwise makes it and
/// re-executes into it (returning only with the error).
pub(crate) fn ensure_sealed() -> Result<()> {
    let exe = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os("open", e).on("/proc/self/exe"))?;
    // A regular file has no seals (EINVAL); the copy has all four.
    if fcntl_get_seals(&exe).is_ok_and(|seals| seals.contains(SEALS)) {
        return Ok(());
    }
    let copy = memfd_create("microbox", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| Error::os("create a memfd for microbox's own copy", e))?;
    {
        let mut from = std::fs::File::from(exe);
        let mut to = std::fs::File::from(
            copy.try_clone()
                .map_err(|e| Error::os("duplicate the memfd", e))?,
        );
        std::io::copy(&mut from, &mut to)
            .map_err(|e| Error::os("copy microbox into a memfd", e))?;
    }
    fcntl_add_seals(&copy, SEALS).map_err(|e| Error::os("seal microbox's copy", e))?;
    let cstring = |bytes: Vec<u8>| {
        CString::new(bytes).map_err(|_| Error::runtime("an argument or variable holds a NUL byte"))
    };
    let argv = std::env::args_os()
        .map(|a| cstring(a.into_vec()))
        .collect::<Result<Vec<_>>>()?;
    let envp = std::env::vars_os()
        .map(|(k, v)| {
            let mut pair = k.into_vec();
            pair.push(b'=');
            pair.extend(v.into_vec());
            cstring(pair)
        })
        .collect::<Result<Vec<_>>>()?;
    let err = crate::sys::exec::execve_fd(copy.as_fd(), &argv, &envp);
    Err(Error::os("re-execute from microbox's sealed copy", err))
}
