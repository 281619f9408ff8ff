//! Writer for the cpio "newc" format as the kernel's initramfs unpacker reads it
//! (init/initramfs.c): 110-byte ASCII headers, NUL-terminated names, header+name
//! and data each padded to 4 bytes from the archive start, unique inodes.

use std::collections::BTreeSet;
use std::io::{self, Write};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

pub struct Newc<W: Write> {
    out: W,
    offset: u64,
    next_ino: u32,
    /// The kernel does not create missing parents, so every entry's parent must
    /// have been written first; tracking them turns a silent boot failure into
    /// an error at build time.
    dirs: BTreeSet<String>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl<W: Write> Newc<W> {
    pub fn new(out: W) -> Self {
        Newc {
            out,
            offset: 0,
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - self.offset % 4) % 4;
        self.out
            .write_all(&[0u8; 3][..usize::try_from(pad).unwrap_or(0)])?;
        self.offset += pad;
        Ok(())
    }

    fn check_name(&self, name: &str) -> io::Result<()> {
        if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains('\0') {
            return Err(invalid(format!("cpio: bad entry name {name:?}")));
        }
        if name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(invalid(format!(
                "cpio: entry name {name:?} is not normalised"
            )));
        }
        if let Some((parent, _)) = name.rsplit_once('/') {
            if !self.dirs.contains(parent) {
                return Err(invalid(format!(
                    "cpio: {name:?} written before its parent directory {parent:?}"
                )));
            }
        }
        Ok(())
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let ino = if name == "TRAILER!!!" {
            0
        } else {
            let ino = self.next_ino;
            self.next_ino += 1;
            ino
        };
        let size = u32::try_from(data.len())
            .map_err(|_| invalid(format!("cpio: {name:?} is larger than 4 GiB")))?;
        let namesize = u32::try_from(name.len() + 1)
            .map_err(|_| invalid(format!("cpio: name {name:?} too long")))?;
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08X}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.offset += 110 + u64::from(namesize);
        self.pad()?;
        self.out.write_all(data)?;
        self.offset += u64::from(size);
        self.pad()
    }

    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.check_name(name)?;
        if self.dirs.contains(name) {
            return Ok(());
        }
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])?;
        self.dirs.insert(name.to_string());
        Ok(())
    }

    /// Creates `name` and every missing ancestor with mode 0755.
    pub fn dir_all(&mut self, name: &str) -> io::Result<()> {
        let mut prefix = String::new();
        for part in name.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.dir(&prefix, 0o755)?;
        }
        Ok(())
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.check_name(name)?;
        self.entry(name, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    /// Symlink data is the target without a trailing NUL.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.check_name(name)?;
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.check_name(name)?;
        self.entry(name, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// Writes the trailer and hands back the writer. The result is 4-byte
    /// aligned, so another archive may be concatenated after it.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// One decoded entry: (name, mode, rdevmajor, rdevminor, data).
    pub type Entry = (String, u32, u32, u32, Vec<u8>);

    /// A strict reader, used to check what the writer produced.
    pub fn read_all(mut b: &[u8]) -> Vec<Entry> {
        let total = b.len();
        let mut out = Vec::new();
        loop {
            assert_eq!((total - b.len()) % 4, 0, "entry not 4-aligned");
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + i * 8..14 + i * 8]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, rmaj, rmin, namesize) = (
                field(1),
                field(6) as usize,
                field(9),
                field(10),
                field(11) as usize,
            );
            let name = std::str::from_utf8(&b[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(b[110 + namesize - 1], 0, "name not NUL-terminated");
            let data_start = (110 + namesize).div_ceil(4) * 4;
            let data = b[data_start..data_start + size].to_vec();
            b = &b[(data_start + size).div_ceil(4) * 4..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty(), "bytes after trailer");
                return out;
            }
            out.push((name, mode, rmaj, rmin, data));
        }
    }

    #[test]
    fn round_trip() {
        let mut w = Newc::new(Vec::new());
        w.dir_all("usr/local/bin").unwrap();
        w.dir("dev", 0o755).unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        w.file("usr/local/bin/x", 0o755, b"hello").unwrap();
        w.symlink("usr/local/bin/y", "/bin/busybox").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let entries = read_all(&bytes);
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "usr",
                "usr/local",
                "usr/local/bin",
                "dev",
                "dev/console",
                "usr/local/bin/x",
                "usr/local/bin/y"
            ]
        );
        assert_eq!(entries[4].1, 0o020_600);
        assert_eq!((entries[4].2, entries[4].3), (5, 1));
        assert_eq!(entries[5].1, 0o100_755);
        assert_eq!(entries[5].4, b"hello");
        assert_eq!(entries[6].1, 0o120_777);
        assert_eq!(entries[6].4, b"/bin/busybox");
    }

    #[test]
    fn exact_header_bytes() {
        let mut w = Newc::new(Vec::new());
        w.file("a", 0o644, b"xy").unwrap();
        let bytes = w.finish().unwrap();
        let expected_header = concat!(
            "070701", "00000001", "000081A4", "00000000", "00000000", "00000001", "00000000",
            "00000002", "00000000", "00000000", "00000000", "00000000", "00000002", "00000000"
        );
        assert_eq!(&bytes[..110], expected_header.as_bytes());
        // 110 + "a\0" = 112 (aligned), then "xy" + 2 bytes of padding.
        assert_eq!(&bytes[110..116], b"a\0xy\0\0");
        assert_eq!(&bytes[116..122], b"070701");
    }

    #[test]
    fn refuses_orphans_and_bad_names() {
        let mut w = Newc::new(Vec::new());
        assert!(w.file("bin/sh", 0o755, b"").is_err());
        for bad in ["/abs", "a//b", "a/../b", "", "dir/"] {
            assert!(w.file(bad, 0o644, b"").is_err(), "{bad:?}");
        }
    }
}
