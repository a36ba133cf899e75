//! Whether the program's buffers are there: a bad pointer must fail a
//! send or receive with `EFAULT`, as the kernel's copy_from_user does, not
//! crash the program when shunt copies it.
//!
//! How: the kernel is asked, with `process_vm_readv` (and, for buffers
//! shunt writes into, `process_vm_writev` of the byte just read) on one
//! byte of every page of the buffer — it fails with `EFAULT` exactly where
//! a `copy_*_user` would. That is a syscall, so each thread remembers the
//! last few page ranges it found good: programs send from and receive into
//! the same buffers over and over, and the fast path is then a few
//! compares. Addresses past the top of user space never get that far.
//!
//! The price of the cache: a buffer unmapped (or made read-only) after it
//! was found good, then passed again, faults in shunt instead of failing
//! with `EFAULT`. That needs a use-after-free in the program; glibc's own
//! `munmap`s bypass any hook, so there is no cheap way to forget ranges.

use core::cell::Cell;

use libc::iovec;

use crate::socket::Errno;

const PAGE: usize = 4096;
/// The top of user space with 5-level paging (x86-64's TASK_SIZE_MAX with
/// LA57); with 4-level paging the probe catches what lies between.
const USER_TOP: usize = 0x00ff_ffff_ffff_f000;
const SLOTS: usize = 4;
/// The most pages one probe syscall checks (IOV_MAX).
const BATCH: usize = 1024;

/// A page range found good: [start, end), and whether writable too.
#[derive(Clone, Copy)]
struct Good {
    start: usize,
    end: usize,
    write: bool,
}

thread_local! {
    static GOOD: Cell<[Good; SLOTS]> = const {
        Cell::new([Good { start: 0, end: 0, write: false }; SLOTS])
    };
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

/// `EFAULT` unless every buffer of `v` can be read (and, with `write`,
/// written) by this process.
pub fn check(v: &[iovec], write: bool) -> Result<(), Errno> {
    for x in v {
        if x.iov_len > 0 {
            check_one(x.iov_base as usize, x.iov_len, write)?;
        }
    }
    Ok(())
}

fn check_one(addr: usize, len: usize, write: bool) -> Result<(), Errno> {
    let end = addr.checked_add(len).ok_or(Errno::FAULT)?;
    if end > USER_TOP {
        return Err(Errno::FAULT);
    }
    let (start, end) = (addr & !(PAGE - 1), end.div_ceil(PAGE) * PAGE);
    let slots = GOOD.with(Cell::get);
    if slots
        .iter()
        .any(|g| g.start <= start && end <= g.end && (g.write || !write))
    {
        return Ok(());
    }
    probe(start, end, write)?;
    let mut slots = slots;
    let i = NEXT.with(|n| {
        let i = n.get();
        n.set((i + 1) % SLOTS);
        i
    });
    slots[i] = Good { start, end, write };
    GOOD.with(|g| g.set(slots));
    Ok(())
}

/// One byte of each page of [start, end) through the kernel.
fn probe(start: usize, end: usize, write: bool) -> Result<(), Errno> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let mut bytes = [0u8; BATCH];
    let mut remote = [iovec {
        iov_base: core::ptr::null_mut(),
        iov_len: 1,
    }; BATCH];
    let mut page = start;
    while page < end {
        let n = ((end - page) / PAGE).min(BATCH);
        for (i, r) in remote[..n].iter_mut().enumerate() {
            r.iov_base = (page + i * PAGE) as *mut libc::c_void;
        }
        let local = iovec {
            iov_base: bytes.as_mut_ptr().cast(),
            iov_len: n,
        };
        // SAFETY: reads into our own buffer of `n` bytes; the remote
        // ranges are only read by the kernel, which checks them.
        let got = unsafe { vm_rw(libc::SYS_process_vm_readv, pid, &local, &remote[..n]) };
        if got < 0 {
            // The first page failed; any other error (a sandbox without
            // the call) is no answer: the buffer is taken as good, as shunt
            // did before.
            return match Errno::from_raw_os_error(errno()) {
                Errno::FAULT => Err(Errno::FAULT),
                _ => Ok(()),
            };
        }
        if got as usize != n {
            return Err(Errno::FAULT);
        }
        if write {
            // SAFETY: writes back the bytes just read; the kernel checks the
            // remote ranges for write access.
            let put = unsafe { vm_rw(libc::SYS_process_vm_writev, pid, &local, &remote[..n]) };
            if (put < 0 && errno() == libc::EFAULT) || (put >= 0 && put as usize != n) {
                return Err(Errno::FAULT);
            }
        }
        page += n * PAGE;
    }
    Ok(())
}

/// process_vm_readv / process_vm_writev between our `local` buffer and
/// `remote` in this process. Every argument goes as a full register: the
/// kernel reads `flags` as an unsigned long, and a variadic int leaves the
/// upper half undefined (EINVAL).
///
/// # Safety
/// `local` is our buffer; `remote` ranges are checked by the kernel.
unsafe fn vm_rw(nr: libc::c_long, pid: i32, local: &iovec, remote: &[iovec]) -> libc::c_long {
    // SAFETY: per the contract.
    unsafe {
        libc::syscall(
            nr,
            pid as libc::c_long,
            local as *const iovec,
            1 as libc::c_ulong,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0 as libc::c_ulong,
        )
    }
}

fn errno() -> i32 {
    // SAFETY: errno of this thread, read right after the syscall.
    unsafe { *libc::__errno_location() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(p: *mut u8, n: usize) -> [iovec; 1] {
        [iovec {
            iov_base: p.cast(),
            iov_len: n,
        }]
    }

    #[test]
    fn good_bad_and_read_only_buffers() {
        let mut buf = [0u8; 64];
        assert_eq!(check(&io(buf.as_mut_ptr(), 64), true), Ok(()));
        assert_eq!(check(&io(8 as *mut u8, 16), false), Err(Errno::FAULT));
        assert_eq!(
            check(&io(usize::MAX as *mut u8, 2), false),
            Err(Errno::FAULT)
        );
        assert_eq!(
            check(&io(0x7fff_ffff_0000_0000 as *mut u8, 2), false),
            Err(Errno::FAULT)
        );
        // SAFETY: a fresh anonymous mapping of three pages, ours alone.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                3 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        }
        .cast::<u8>();
        assert_ne!(p as *mut libc::c_void, libc::MAP_FAILED);
        // SAFETY: the mapping above: the middle page read-only, the last
        // one gone.
        unsafe {
            libc::mprotect(p.add(PAGE).cast(), PAGE, libc::PROT_READ);
            libc::munmap(p.add(2 * PAGE).cast(), PAGE);
        }
        // SAFETY: pointer arithmetic within the mapping.
        let (mid, last) = unsafe { (p.add(PAGE), p.add(2 * PAGE)) };
        assert_eq!(check(&io(mid, 10), false), Ok(()));
        assert_eq!(check(&io(mid, 10), true), Err(Errno::FAULT));
        // A buffer running off the end of the mapping.
        assert_eq!(check(&io(mid, PAGE + 1), false), Err(Errno::FAULT));
        assert_eq!(check(&io(last, 1), false), Err(Errno::FAULT));
        // The first page is fine both ways, and remembered.
        assert_eq!(check(&io(p, PAGE), true), Ok(()));
        assert_eq!(check(&io(p, 100), true), Ok(()));
        // SAFETY: the rest of the mapping.
        unsafe { libc::munmap(p.cast(), 2 * PAGE) };
    }
}
