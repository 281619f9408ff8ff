//! Just enough ELF64 reading to answer two questions: is a binary static (no
//! PT_INTERP program header), and can QEMU boot a vmlinux directly (a Xen
//! PHYS32_ENTRY note, which is how QEMU recognises a PVH kernel).

const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
/// `XEN_ELFNOTE_PHYS32_ENTRY` from xen/include/public/elfnote.h.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

pub struct ProgramHeader {
    pub kind: u32,
    pub offset: u64,
    pub filesz: u64,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Program headers of a little-endian ELF64 file, or a reason why there are none.
pub fn program_headers(bytes: &[u8]) -> Result<Vec<ProgramHeader>, String> {
    if !is_elf(bytes) {
        return Err("not an ELF file".into());
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err("not a little-endian 64-bit ELF file".into());
    }
    let truncated = || "truncated ELF header".to_string();
    let phoff = usize::try_from(u64_at(bytes, 0x20).ok_or_else(truncated)?)
        .map_err(|_| "program header offset out of range".to_string())?;
    let phentsize = usize::from(u16_at(bytes, 0x36).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(bytes, 0x38).ok_or_else(truncated)?);
    if phentsize < 0x38 {
        return Err(format!(
            "program header entry size {phentsize} is too small"
        ));
    }
    (0..phnum)
        .map(|i| {
            let base = phoff + i * phentsize;
            Ok(ProgramHeader {
                kind: u32_at(bytes, base).ok_or("truncated program header table")?,
                offset: u64_at(bytes, base + 8).ok_or("truncated program header table")?,
                filesz: u64_at(bytes, base + 0x20).ok_or("truncated program header table")?,
            })
        })
        .collect()
}

/// A binary is static when it needs no dynamic loader, i.e. has no PT_INTERP
/// (static-pie binaries carry PT_DYNAMIC for self-relocation, which is fine).
pub fn is_static(bytes: &[u8]) -> Result<bool, String> {
    Ok(!program_headers(bytes)?
        .iter()
        .any(|ph| ph.kind == PT_INTERP))
}

/// True when a PT_NOTE segment holds the Xen PHYS32_ENTRY note (PVH entry point).
pub fn has_pvh_note(bytes: &[u8]) -> bool {
    let Ok(headers) = program_headers(bytes) else {
        return false;
    };
    headers.iter().filter(|ph| ph.kind == PT_NOTE).any(|ph| {
        let (Ok(start), Ok(len)) = (usize::try_from(ph.offset), usize::try_from(ph.filesz)) else {
            return false;
        };
        let Some(notes) = bytes.get(start..start.saturating_add(len)) else {
            return false;
        };
        notes_contain(notes, b"Xen", XEN_ELFNOTE_PHYS32_ENTRY)
    })
}

fn notes_contain(mut notes: &[u8], owner: &[u8], wanted: u32) -> bool {
    let align4 = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let (Some(namesz), Some(descsz), Some(kind)) =
            (u32_at(notes, 0), u32_at(notes, 4), u32_at(notes, 8))
        else {
            return false;
        };
        let (Ok(namesz), Ok(descsz)) = (usize::try_from(namesz), usize::try_from(descsz)) else {
            return false;
        };
        let name = notes.get(12..12 + namesz).unwrap_or(&[]);
        if kind == wanted && name.strip_suffix(b"\0").unwrap_or(name) == owner {
            return true;
        }
        let next = 12 + align4(namesz) + align4(descsz);
        match notes.get(next..) {
            Some(rest) => notes = rest,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 image with the given program header types.
    fn fake_elf(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 0x40];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&u16::try_from(types.len()).unwrap().to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 0x38];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&ph);
        }
        b
    }

    #[test]
    fn interp_means_dynamic() {
        assert!(!is_static(&fake_elf(&[6, PT_INTERP, 1])).unwrap());
        assert!(is_static(&fake_elf(&[6, 1, 2])).unwrap());
        assert!(is_static(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn host_binaries() {
        // /bin/sh on Debian is dynamic; busybox-static, when present, is static.
        if let Ok(sh) = std::fs::read("/bin/sh") {
            assert!(!is_static(&sh).unwrap());
        }
        assert!(!has_pvh_note(&fake_elf(&[PT_NOTE])));
    }

    #[test]
    fn finds_xen_note() {
        let mut notes = Vec::new();
        for (name, kind) in [
            (&b"GNU\0"[..], 3u32),
            (&b"Xen\0"[..], XEN_ELFNOTE_PHYS32_ENTRY),
        ] {
            notes.extend_from_slice(&u32::try_from(name.len()).unwrap().to_le_bytes());
            notes.extend_from_slice(&4u32.to_le_bytes());
            notes.extend_from_slice(&kind.to_le_bytes());
            notes.extend_from_slice(name);
            notes.extend_from_slice(&[0; 4]);
        }
        assert!(notes_contain(&notes, b"Xen", XEN_ELFNOTE_PHYS32_ENTRY));
        assert!(!notes_contain(&notes, b"Xen", 17));
        assert!(!notes_contain(
            &notes[..20],
            b"Xen",
            XEN_ELFNOTE_PHYS32_ENTRY
        ));
    }
}
