//! Which file descriptors are shunt's: a lock-free table indexed by fd.
//!
//! Every hook starts with [`get`]: for a descriptor below [`DIRECT`] it is
//! one atomic load from a static array (256 KiB of zero pages that cost
//! nothing until an entry is written); above, a second level of lazily
//! allocated chunks covers every fd Linux can hand out (`nr_open` is at
//! most 2^30), and an absent chunk means "kernel". No lock, no allocation,
//! async-signal-safe: the kernel path of a hook is `get(fd) == 0` and a
//! tail call.
//!
//! An entry is a `u32`: 0 is the kernel's, otherwise a 2-bit kind and a 30-bit id:
//! a shunt socket, an epoll instance watching shunt sockets, or one of
//! shunt's own descriptors (lock file, device, wake-up eventfd) that the
//! program never opened and must not see.
//!
//! Writers are the hooks that create and destroy descriptors (socket,
//! accept, dup*, fcntl(F_DUPFD*), close*, epoll_ctl). The kernel decides fd
//! numbers, so two threads never create the same fd at once; a writer
//! publishes the entry with Release after the socket state it points to,
//! and readers load with Acquire.

use core::ffi::c_int;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// Descriptors below this are looked up with a single load.
pub const DIRECT: usize = 1 << 16;
const CHUNK_BITS: u32 = 16;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Second-level chunks: with the direct part, fds up to 2^30.
const CHUNKS: usize = 1 << (30 - CHUNK_BITS);

const KIND_SHIFT: u32 = 30;
const ID_MASK: u32 = (1 << KIND_SHIFT) - 1;
const KIND_SOCKET: u32 = 1;
const KIND_EPOLL: u32 = 2;
const KIND_INTERNAL: u32 = 3;

/// Largest id an entry can carry.
pub const MAX_ID: u32 = ID_MASK;

/// What a descriptor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The kernel's: the hook passes the call through.
    Kernel,
    /// A shunt socket (the id is the stack integration's handle; dup'd
    /// fds share it).
    Socket(u32),
    /// An epoll instance that watches at least one shunt socket (the id
    /// names the userspace side of its interest list).
    Epoll(u32),
    /// One of shunt's own descriptors.
    Internal(u32),
}

impl Entry {
    #[inline]
    pub const fn encode(self) -> u32 {
        match self {
            Entry::Kernel => 0,
            Entry::Socket(id) => (KIND_SOCKET << KIND_SHIFT) | (id & ID_MASK),
            Entry::Epoll(id) => (KIND_EPOLL << KIND_SHIFT) | (id & ID_MASK),
            Entry::Internal(id) => (KIND_INTERNAL << KIND_SHIFT) | (id & ID_MASK),
        }
    }

    #[inline]
    pub const fn decode(raw: u32) -> Entry {
        let id = raw & ID_MASK;
        match raw >> KIND_SHIFT {
            KIND_SOCKET => Entry::Socket(id),
            KIND_EPOLL => Entry::Epoll(id),
            KIND_INTERNAL => Entry::Internal(id),
            _ => Entry::Kernel,
        }
    }

    fn counts_as_shunt(self) -> bool {
        matches!(self, Entry::Socket(_) | Entry::Epoll(_))
    }
}

struct Chunk([AtomicU32; CHUNK]);

static TABLE: [AtomicU32; DIRECT] = [const { AtomicU32::new(0) }; DIRECT];
static CHUNK_TABLE: [AtomicPtr<Chunk>; CHUNKS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; CHUNKS];

/// How many descriptors are shunt sockets or epoll instances with shunt
/// members. Zero means every descriptor is the kernel's, which lets the
/// hooks that take many fds at once (poll, select, close_range, fork,
/// exec) pass through after one load.
pub(crate) static SHUNT_FDS: AtomicUsize = AtomicUsize::new(0);
/// How many descriptors are shunt's own.
static INTERNAL_FDS: AtomicUsize = AtomicUsize::new(0);
/// The highest fd ever marked (so range operations stop there).
static HIGH_WATER: AtomicU32 = AtomicU32::new(0);

/// The highest fd that was ever anything but the kernel's.
pub fn high_water() -> u32 {
    HIGH_WATER.load(Ordering::Acquire)
}

/// The raw entry of `fd`: 0 for the kernel's. Never panics, never
/// allocates, async-signal-safe. Negative fds are the kernel's (it will
/// say EBADF).
#[inline(always)]
pub fn get(fd: c_int) -> u32 {
    let i = fd as u32 as usize;
    match TABLE.get(i) {
        Some(e) => e.load(Ordering::Acquire),
        None => get_far(i),
    }
}

#[cold]
#[inline(never)]
fn get_far(i: usize) -> u32 {
    let Some(slot) = CHUNK_TABLE.get((i >> CHUNK_BITS) - (DIRECT >> CHUNK_BITS)) else {
        return 0;
    };
    let chunk = slot.load(Ordering::Acquire);
    if chunk.is_null() {
        return 0;
    }
    // SAFETY: chunks are allocated once, published with Release and never
    // freed, so a non-null pointer stays valid for the process's life.
    let chunk = unsafe { &*chunk };
    chunk.0[i & (CHUNK - 1)].load(Ordering::Acquire)
}

/// The decoded entry of `fd`.
#[inline]
pub fn lookup(fd: c_int) -> Entry {
    Entry::decode(get(fd))
}

/// True when no descriptor at all is a shunt socket or shunt epoll.
#[inline(always)]
pub fn all_kernel() -> bool {
    SHUNT_FDS.load(Ordering::Acquire) == 0
}

/// True when shunt holds descriptors of its own.
#[inline]
pub fn has_internal() -> bool {
    INTERNAL_FDS.load(Ordering::Acquire) != 0
}

fn slot_for(fd: c_int) -> Option<&'static AtomicU32> {
    if fd < 0 {
        return None;
    }
    let i = fd as usize;
    if let Some(e) = TABLE.get(i) {
        return Some(e);
    }
    let slot = CHUNK_TABLE.get((i >> CHUNK_BITS) - (DIRECT >> CHUNK_BITS))?;
    let mut chunk = slot.load(Ordering::Acquire);
    if chunk.is_null() {
        let fresh = Box::into_raw(Box::new(Chunk([const { AtomicU32::new(0) }; CHUNK])));
        match slot.compare_exchange(
            core::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => chunk = fresh,
            Err(existing) => {
                // SAFETY: `fresh` came from Box::into_raw above and was
                // never published.
                drop(unsafe { Box::from_raw(fresh) });
                chunk = existing;
            }
        }
    }
    // SAFETY: as in get_far: published chunks are never freed.
    let chunk = unsafe { &*chunk };
    Some(&chunk.0[i & (CHUNK - 1)])
}

/// Set `fd`'s entry, returning the previous one. Only the stack
/// integration ([`crate::sockets`], [`crate::engine`]) and the hooks call
/// this.
/// May allocate a chunk for fds at or above [`DIRECT`]; ids above
/// [`MAX_ID`] are refused (`None`, nothing changed), as are negative fds.
pub fn set(fd: c_int, entry: Entry) -> Option<Entry> {
    let id = match entry {
        Entry::Kernel => 0,
        Entry::Socket(id) | Entry::Epoll(id) | Entry::Internal(id) => id,
    };
    if id > MAX_ID {
        return None;
    }
    let slot = slot_for(fd)?;
    if entry != Entry::Kernel {
        HIGH_WATER.fetch_max(fd as u32, Ordering::AcqRel);
    }
    let old = Entry::decode(slot.swap(entry.encode(), Ordering::AcqRel));
    for (e, delta) in [(old, -1isize), (entry, 1)] {
        let counter = if e.counts_as_shunt() {
            &SHUNT_FDS
        } else if matches!(e, Entry::Internal(_)) {
            &INTERNAL_FDS
        } else {
            continue;
        };
        if delta > 0 {
            counter.fetch_add(1, Ordering::AcqRel);
        } else {
            counter.fetch_sub(1, Ordering::AcqRel);
        }
    }
    Some(old)
}

/// Mark `fd` the kernel's again; returns what it was.
pub fn clear(fd: c_int) -> Entry {
    set(fd, Entry::Kernel).unwrap_or(Entry::Kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The table is process-global: each test uses its own fd numbers, and
    // tests that read the counters run one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn encode_decode_round_trip() {
        for e in [
            Entry::Kernel,
            Entry::Socket(0),
            Entry::Socket(MAX_ID),
            Entry::Epoll(7),
            Entry::Internal(3),
        ] {
            assert_eq!(Entry::decode(e.encode()), e);
        }
        assert_ne!(Entry::Socket(0).encode(), 0);
    }

    #[test]
    fn near_far_and_negative() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(lookup(100), Entry::Kernel);
        assert_eq!(lookup(-1), Entry::Kernel);
        assert_eq!(lookup(c_int::MAX), Entry::Kernel);
        let before = SHUNT_FDS.load(Ordering::Relaxed);
        assert_eq!(set(100, Entry::Socket(5)), Some(Entry::Kernel));
        assert_eq!(lookup(100), Entry::Socket(5));
        let far = (DIRECT + 12345) as c_int;
        assert_eq!(lookup(far), Entry::Kernel);
        assert_eq!(set(far, Entry::Epoll(9)), Some(Entry::Kernel));
        assert_eq!(lookup(far), Entry::Epoll(9));
        assert_eq!(lookup(far + 1), Entry::Kernel);
        assert!(SHUNT_FDS.load(Ordering::Relaxed) >= before + 2);
        assert_eq!(clear(100), Entry::Socket(5));
        assert_eq!(clear(far), Entry::Epoll(9));
        assert_eq!(lookup(far), Entry::Kernel);
        assert_eq!(set(-3, Entry::Socket(1)), None);
        assert_eq!(set(101, Entry::Socket(MAX_ID + 1)), None);
        // Beyond Linux's largest possible fd: refused, reads as kernel.
        assert_eq!(set(c_int::MAX, Entry::Socket(1)), None);
        assert_eq!(lookup(c_int::MAX), Entry::Kernel);
    }

    #[test]
    fn internal_fds_are_counted_apart() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let shunt = SHUNT_FDS.load(Ordering::Relaxed);
        set(200, Entry::Internal(1));
        assert!(has_internal());
        assert_eq!(lookup(200), Entry::Internal(1));
        assert_eq!(SHUNT_FDS.load(Ordering::Relaxed), shunt);
        clear(200);
    }
}
