//! The bpf(2) system call, by hand: the few commands an XDP loader needs
//! (create and update maps, load a program, attach it with a link, run it
//! on a test frame). No libbpf, no ELF: the program is an instruction
//! array built in [`super::program`].
//!
//! Every `bpf_attr` below is the prefix of the kernel's union that the
//! command reads; the kernel treats the bytes we do not pass as zero, and
//! refuses (EINVAL) non-zero bytes past the command's last field, so no
//! struct here may have implicit padding (checked in the tests).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

// Commands (enum bpf_cmd).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;

/// `BPF_MAP_TYPE_HASH`.
pub const MAP_HASH: u32 = 1;
/// `BPF_MAP_TYPE_XSKMAP`: queue index to AF_XDP socket.
pub const MAP_XSKMAP: u32 = 17;
/// `BPF_F_NO_PREALLOC`: hash map entries allocated on update.
pub const F_NO_PREALLOC: u32 = 1;
/// `BPF_PROG_TYPE_XDP`.
pub const PROG_XDP: u32 = 6;
/// `BPF_XDP` in enum bpf_attach_type.
pub const ATTACH_XDP: u32 = 37;

/// `XDP_FLAGS_SKB_MODE`: generic XDP, run on the skb (any driver).
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP, run by the driver.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `BPF_ANY` for map updates: create or replace.
const BPF_ANY: u64 = 0;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
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
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Explicit, so that it is zero: the kernel refuses non-zero bytes
    /// past the last field it knows.
    _pad: u32,
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// bpf(cmd, attr, sizeof attr).
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, i32> {
    // The kernel reads `attr`, may write output fields inside it, and
    // follows only the pointers callers stored in it (kept alive by them).
    // SAFETY: `attr` is a live, initialised repr(C) prefix of union
    // bpf_attr, and we pass its exact size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 { Err(last_errno()) } else { Ok(r) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_have_no_implicit_padding() {
        use std::mem::size_of;
        // The sums of the field sizes.
        assert_eq!(size_of::<MapCreateAttr>(), 7 * 4 + 16);
        assert_eq!(size_of::<MapElemAttr>(), 2 * 4 + 3 * 8);
        assert_eq!(size_of::<ProgLoadAttr>(), 8 * 4 + 3 * 8 + 16);
        assert_eq!(size_of::<LinkCreateAttr>(), 4 * 4);
        assert_eq!(size_of::<TestRunAttr>(), 12 * 4 + 4 * 8);
        assert_eq!(size_of::<Insn>(), 8);
    }
}

fn fd_result(r: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor (with
    // O_CLOEXEC: bpf(2) always sets it) and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

fn name16(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    let b = name.as_bytes();
    let len = b.len().min(15);
    n[..len].copy_from_slice(&b[..len]);
    n
}

/// BPF_MAP_CREATE.
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: &str,
) -> Result<OwnedFd, i32> {
    let mut a = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags,
        map_name: name16(name),
        ..Default::default()
    };
    bpf(BPF_MAP_CREATE, &mut a).map(fd_result)
}

/// BPF_MAP_UPDATE_ELEM with BPF_ANY. `key` and `value` must be exactly the
/// map's key and value sizes.
pub fn map_update(map: BorrowedFd, key: &[u8], value: &[u8]) -> Result<(), i32> {
    let mut a = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags: BPF_ANY,
        ..Default::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// BPF_MAP_DELETE_ELEM; Ok(false) if the key was not there.
pub fn map_delete(map: BorrowedFd, key: &[u8]) -> Result<bool, i32> {
    let mut a = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..Default::default()
    };
    match bpf(BPF_MAP_DELETE_ELEM, &mut a) {
        Ok(_) => Ok(true),
        Err(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// BPF_MAP_LOOKUP_ELEM into `value` (the map's value size); Ok(false) if
/// the key is not there.
pub fn map_lookup(map: BorrowedFd, key: &[u8], value: &mut [u8]) -> Result<bool, i32> {
    let mut a = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
        Ok(_) => Ok(true),
        Err(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why BPF_PROG_LOAD failed: the errno and, if the verifier said
/// anything, its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub errno: i32,
    pub log: String,
}

/// BPF_PROG_LOAD of an XDP program. On failure the program is loaded a
/// second time with the verifier log on, so the error says why.
pub fn prog_load_xdp(insns: &[Insn], license: &str, name: &str) -> Result<OwnedFd, LoadError> {
    let lic = std::ffi::CString::new(license).map_err(|_| LoadError {
        errno: libc::EINVAL,
        log: String::new(),
    })?;
    let mut a = ProgLoadAttr {
        prog_type: PROG_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: lic.as_ptr() as u64,
        prog_name: name16(name),
        expected_attach_type: ATTACH_XDP,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut a) {
        Ok(fd) => return Ok(fd_result(fd)),
        Err(e) if e != libc::EACCES && e != libc::EINVAL => {
            return Err(LoadError {
                errno: e,
                log: String::new(),
            });
        }
        Err(_) => {}
    }
    // Rejected by the verifier: again, with the log.
    let mut log = vec![0u8; 1 << 20];
    a.log_level = 1;
    a.log_size = log.len() as u32;
    a.log_buf = log.as_mut_ptr() as u64;
    match bpf(BPF_PROG_LOAD, &mut a) {
        Ok(fd) => Ok(fd_result(fd)),
        Err(errno) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(LoadError {
                errno,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
    }
}

/// BPF_LINK_CREATE with attach type BPF_XDP: the program stays attached
/// to `ifindex` (in the calling thread's network namespace) for as long
/// as the returned link descriptor is open, and is detached when the last
/// reference goes, even if the process dies.
pub fn link_create_xdp(prog: BorrowedFd, ifindex: u32, flags: u32) -> Result<OwnedFd, i32> {
    let mut a = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: ATTACH_XDP,
        flags,
    };
    bpf(BPF_LINK_CREATE, &mut a).map(fd_result)
}

/// BPF_PROG_TEST_RUN: run the program once on a copy of `frame` (at least
/// 14 bytes); returns its verdict (XDP_PASS, XDP_REDIRECT...).
pub fn prog_test_run(prog: BorrowedFd, frame: &[u8]) -> Result<u32, i32> {
    let mut out = vec![0u8; frame.len() + 512];
    let mut a = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    bpf(BPF_PROG_TEST_RUN, &mut a)?;
    Ok(a.retval)
}
