//! bpf(2), as much as the cgroup v2 device controller needs: the eBPF
//! instruction format, loading a BPF_PROG_TYPE_CGROUP_DEVICE program and
//! attaching it to a cgroup. The program itself is built in `cgroup::devices`.
//!
//! Constants are from include/uapi/linux/bpf.h unless said otherwise; libc has
//! the classic half of the opcodes (include/uapi/linux/bpf_common.h) and those
//! are taken from it.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `enum bpf_cmd`.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
/// `enum bpf_prog_type`.
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `enum bpf_attach_type`.
pub const BPF_CGROUP_DEVICE: u32 = 6;
/// Attach flag: other programs may be attached beside this one, here and in
/// descendants; the kernel runs them all and an access needs every one's 1.
pub const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// The low 16 bits of `bpf_cgroup_dev_ctx.access_type`: the node's type.
pub const BPF_DEVCG_DEV_BLOCK: u16 = 1 << 0;
pub const BPF_DEVCG_DEV_CHAR: u16 = 1 << 1;
/// The high 16 bits of `access_type`: what the process asks for.
pub const BPF_DEVCG_ACC_MKNOD: u16 = 1 << 0;
pub const BPF_DEVCG_ACC_READ: u16 = 1 << 1;
pub const BPF_DEVCG_ACC_WRITE: u16 = 1 << 2;
/// Byte offsets in `struct bpf_cgroup_dev_ctx { u32 access_type, major, minor; }`.
pub const CTX_ACCESS_TYPE: i16 = 0;
pub const CTX_MAJOR: i16 = 4;
pub const CTX_MINOR: i16 = 8;

/// Opcode parts eBPF adds to classic BPF's.
pub const BPF_ALU64: u8 = 0x07;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_EXIT: u8 = 0x90;
/// bpf_common.h's, from libc, as the u8 the opcode field is.
pub const BPF_LDX: u8 = byte(libc::BPF_LDX);
pub const BPF_ALU: u8 = byte(libc::BPF_ALU);
pub const BPF_JMP: u8 = byte(libc::BPF_JMP);
pub const BPF_W: u8 = byte(libc::BPF_W);
pub const BPF_MEM: u8 = byte(libc::BPF_MEM);
pub const BPF_AND: u8 = byte(libc::BPF_AND);
pub const BPF_RSH: u8 = byte(libc::BPF_RSH);
pub const BPF_JEQ: u8 = byte(libc::BPF_JEQ);
pub const BPF_K: u8 = byte(libc::BPF_K);
pub const BPF_X: u8 = byte(libc::BPF_X);

/// An opcode part of bpf_common.h, which libc types as u32 though every one
/// fits the 8-bit field (checked at compile time).
#[allow(clippy::cast_possible_truncation)] // checked by the assert
const fn byte(part: u32) -> u8 {
    assert!(part <= 0xff);
    part as u8
}

/// `struct bpf_insn`, with the two 4-bit register fields as bytes; [`encode`]
/// makes the kernel's 8 bytes of it.
///
/// [`encode`]: BpfInsn::encode
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    /// Register numbers 0 to 10.
    pub dst: u8,
    pub src: u8,
    /// Jump offset in instructions from the next one, or memory offset in bytes.
    pub off: i16,
    pub imm: i32,
}

impl BpfInsn {
    /// `dst = *(u32 *)(src + off)`.
    pub const fn load_word(dst: u8, src: u8, off: i16) -> Self {
        Self::new(BPF_LDX | BPF_W | BPF_MEM, dst, src, off, 0)
    }

    /// `wdst = wsrc`: a 32-bit move, which clears the upper half of `dst`.
    pub const fn mov32_reg(dst: u8, src: u8) -> Self {
        Self::new(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
    }

    /// `dst = imm`, sign-extended to 64 bits.
    pub const fn mov64_imm(dst: u8, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
    }

    /// `wdst &= imm`.
    pub const fn and32_imm(dst: u8, imm: i32) -> Self {
        Self::new(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm)
    }

    /// `wdst >>= imm` (logical).
    pub const fn rsh32_imm(dst: u8, imm: i32) -> Self {
        Self::new(BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, imm)
    }

    /// `if dst == imm goto +off` (64-bit compare, `imm` sign-extended).
    pub const fn jeq_imm(dst: u8, imm: i32, off: i16) -> Self {
        Self::new(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm)
    }

    /// `if dst != imm goto +off` (64-bit compare, `imm` sign-extended).
    pub const fn jne_imm(dst: u8, imm: i32, off: i16) -> Self {
        Self::new(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
    }

    /// `return r0`.
    pub const fn exit() -> Self {
        Self::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }

    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        BpfInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The instruction as the kernel reads it. The register nibbles follow C's
    /// bitfield order, which is the byte order: `dst_reg` is the low nibble on
    /// little-endian machines and the high one on big-endian ones.
    pub fn encode(&self) -> [u8; 8] {
        let (dst, src) = (self.dst & 0x0f, self.src & 0x0f);
        let regs = if cfg!(target_endian = "little") {
            (src << 4) | dst
        } else {
            (dst << 4) | src
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

/// The BPF_PROG_LOAD part of `union bpf_attr`, up to `prog_name`; the
/// kernel reads later fields as zero when the size passed ends before them.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The BPF_PROG_ATTACH part, zero-padded to the load part's size so that
/// every byte the kernel copies in is initialized (it refuses non-zero bytes
/// past the fields of a command).
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    zero: [u32; 12],
}

#[repr(C)]
union BpfAttr {
    load: ProgLoadAttr,
    attach: ProgAttachAttr,
}

// Both variants cover the whole union: no byte handed to the kernel is padding.
const _: () = assert!(
    std::mem::size_of::<ProgLoadAttr>() == 64
        && std::mem::size_of::<ProgAttachAttr>() == 64
        && std::mem::size_of::<BpfAttr>() == 64
);

/// The name `bpftool prog` shows (at most 15 bytes of `[A-Za-z0-9_.]`).
const PROG_NAME: &[u8] = b"microbox_dev";
/// Enough verifier log for the end of it, where the reason is, for programs
/// of the size `cgroup::devices` makes.
const LOG_SIZE: usize = 64 * 1024;

/// The verifier refused a program: the errno and the end of its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub errno: i32,
    /// The log's last line that is not the statistics line.
    pub reason: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errno = io::Error::from_raw_os_error(self.errno);
        write!(f, "{errno}: {}", self.reason)
    }
}

impl std::error::Error for Rejected {}

/// Loads `insns` as a BPF_PROG_TYPE_CGROUP_DEVICE program (close-on-exec, as
/// every bpf fd is). When the verifier refuses it (EACCES, EINVAL), the load
/// is repeated with a log, and the error carries a [`Rejected`] with the
/// reason; otherwise the error is the plain errno.
pub fn prog_load_cgroup_device(insns: &[BpfInsn], license: &CStr) -> io::Result<OwnedFd> {
    let code: Vec<u8> = insns.iter().flat_map(BpfInsn::encode).collect();
    let count =
        u32::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let err = match prog_load(&code, count, license, None) {
        Ok(fd) => return Ok(fd),
        Err(err) => err,
    };
    let errno = err.raw_os_error().unwrap_or(0);
    if errno != libc::EACCES && errno != libc::EINVAL {
        return Err(err);
    }
    let mut log = vec![0u8; LOG_SIZE];
    // A log that does not fit fails the load with ENOSPC on kernels before
    // 6.4; what was written is still the start of it, and kept.
    if let Ok(fd) = prog_load(&code, count, license, Some(&mut log)) {
        return Ok(fd);
    }
    let text = String::from_utf8_lossy(log.split(|&b| b == 0).next().unwrap_or_default());
    let reason = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with("processed "))
        .map(str::to_string);
    match reason {
        Some(reason) => Err(io::Error::new(err.kind(), Rejected { errno, reason })),
        None => Err(err),
    }
}

fn prog_load(
    code: &[u8],
    count: u32,
    license: &CStr,
    log: Option<&mut [u8]>,
) -> io::Result<OwnedFd> {
    let mut prog_name = [0u8; 16];
    prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (
            1,
            u32::try_from(buf.len()).unwrap_or(u32::MAX),
            buf.as_mut_ptr() as u64,
        ),
        None => (0, 0, 0),
    };
    let mut attr = BpfAttr {
        load: ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: count,
            insns: code.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            kern_version: 0,
            prog_flags: 0,
            prog_name,
        },
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches program `prog` to the cgroup directory `target` as
/// `attach_type` with `flags` (BPF_PROG_ATTACH). The attachment holds its own
/// reference: `prog` may be closed afterwards, and the program goes with the cgroup.
pub fn prog_attach(
    prog: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> io::Result<()> {
    let fd = |fd: BorrowedFd<'_>| {
        u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
    };
    let mut attr = BpfAttr {
        attach: ProgAttachAttr {
            target_fd: fd(target)?,
            attach_bpf_fd: fd(prog)?,
            attach_type,
            attach_flags: flags,
            zero: [0; 12],
        },
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// One bpf(2) call; the non-negative result as a descriptor number.
fn bpf(cmd: libc::c_int, attr: &mut BpfAttr) -> io::Result<i32> {
    let size = libc::c_uint::try_from(std::mem::size_of::<BpfAttr>())
        .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    // SAFETY: `attr` is a fully initialized 64-byte bpf_attr that outlives
    // the call; the pointers inside it (instructions, license, log buffer)
    // are borrowed by the caller for the whole call, and the kernel writes
    // only into the log buffer, within the `log_size` bytes it was given.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut BpfAttr, size) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // As `llvm-objdump -d` prints them for little-endian eBPF.
        let load = BpfInsn::load_word(2, 1, 4).encode();
        let jne = BpfInsn::jne_imm(3, 2, 7).encode();
        if cfg!(target_endian = "little") {
            assert_eq!(load, [0x61, 0x12, 4, 0, 0, 0, 0, 0]);
            assert_eq!(jne, [0x55, 0x03, 7, 0, 2, 0, 0, 0]);
        } else {
            assert_eq!(load, [0x61, 0x21, 0, 4, 0, 0, 0, 0]);
            assert_eq!(jne, [0x55, 0x30, 0, 7, 0, 0, 0, 2]);
        }
        assert_eq!(BpfInsn::exit().encode(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(BpfInsn::mov64_imm(0, 1).encode()[0], 0xb7);
        assert_eq!(BpfInsn::mov32_reg(6, 2).encode()[0], 0xbc);
        assert_eq!(BpfInsn::and32_imm(6, 7).encode()[0], 0x54);
        assert_eq!(BpfInsn::rsh32_imm(2, 16).encode()[0], 0x74);
        assert_eq!(BpfInsn::jeq_imm(6, 0, 2).encode()[0], 0x15);
    }
}
