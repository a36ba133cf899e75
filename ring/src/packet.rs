//! Packets: flat buffers from a preallocated pool (Snabb/Rush's model).
//!
//! A [`Packet`] owns one fixed-size buffer taken from a per-thread free
//! list. Buffers are carved out of large anonymous mappings that are never
//! unmapped, so allocating and freeing a packet is a pointer pop and push:
//! no call to the allocator on the hot path. Dropping a packet returns it
//! to the free list of the thread that drops it; surplus buffers move in
//! batches to a global depot that other threads draw from, so a producer
//! thread and a consumer thread do not grow the pool without bound.
//!
//! Each buffer has [`HEADROOM`] bytes in front of the data so that headers
//! can be prepended without copying, and room for [`MAX_FRAME`] bytes: a
//! 64 KiB GSO frame with its Ethernet header.

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::offload::VnetHdr;

/// Bytes kept free in front of the data of a fresh packet.
pub const HEADROOM: usize = 256;
/// Largest frame a packet holds: 64 KiB of IP plus link-layer headers.
pub const MAX_FRAME: usize = 65536 + 256;
const BUF_SIZE: usize = HEADROOM + MAX_FRAME;
/// Buffers mapped at once when a free list runs dry.
const CHUNK: usize = 64;
/// A thread keeps at most this many free buffers before handing a batch to
/// the depot.
const LOCAL_MAX: usize = 4 * CHUNK * 8;

#[repr(C, align(64))]
struct PacketBuf {
    /// Offset of the first data byte in `buf`.
    head: u32,
    /// Bytes of data.
    len: u32,
    /// Offload state of the frame (checksum still to complete, GSO size):
    /// what a kernel peer's virtio-net header said, or what a device must
    /// tell the kernel on transmit.
    offload: VnetHdr,
    buf: [u8; BUF_SIZE],
}

/// An owned packet buffer. Dropping it returns the buffer to the pool.
pub struct Packet {
    buf: NonNull<PacketBuf>,
}

// SAFETY: a Packet is the unique owner of its buffer (buffers are handed out
// once by the free list and come back only on drop), so moving it to another
// thread moves exclusive access with it.
unsafe impl Send for Packet {}

struct FreeList {
    bufs: UnsafeCell<Vec<NonNull<PacketBuf>>>,
    /// Packets and bytes freed by this thread: the engine's load figure.
    freed: UnsafeCell<(u64, u64)>,
}

impl Drop for FreeList {
    fn drop(&mut self) {
        // The thread is exiting: its free buffers go to the depot.
        let bufs = std::mem::take(self.bufs.get_mut());
        depot_put(bufs);
    }
}

thread_local! {
    static FREE: FreeList = const { FreeList { bufs: UnsafeCell::new(Vec::new()), freed: UnsafeCell::new((0, 0)) } };
}

struct Depot(Mutex<Vec<Vec<NonNull<PacketBuf>>>>);
// SAFETY: the depot only stores pointers to free buffers, which no one owns
// while they sit there; the mutex serialises access to the list itself.
unsafe impl Sync for Depot {}
static DEPOT: Depot = Depot(Mutex::new(Vec::new()));
static MAPPED: AtomicU64 = AtomicU64::new(0);

fn depot_put(batch: Vec<NonNull<PacketBuf>>) {
    if batch.is_empty() {
        return;
    }
    let mut depot = DEPOT.0.lock().unwrap_or_else(|e| e.into_inner());
    depot.push(batch);
}

fn depot_take() -> Option<Vec<NonNull<PacketBuf>>> {
    DEPOT.0.lock().unwrap_or_else(|e| e.into_inner()).pop()
}

/// Map a fresh chunk of buffers. Anonymous memory is zero and committed
/// lazily, so a 64 KiB buffer used for 60-byte frames costs one page.
fn map_chunk(into: &mut Vec<NonNull<PacketBuf>>) {
    let size = std::mem::size_of::<PacketBuf>() * CHUNK;
    // SAFETY: a fresh private anonymous mapping aliases nothing; we never
    // unmap it, so pointers into it stay valid for the whole process.
    let base = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            size,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::PRIVATE,
        )
    };
    let base = match base {
        Ok(p) => p.cast::<PacketBuf>(),
        Err(e) => {
            // Out of memory: nothing sensible remains, as with Box::new.
            std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(size, 64).unwrap_or_else(|_| panic!("{e}")),
            )
        }
    };
    MAPPED.fetch_add(CHUNK as u64, Ordering::Relaxed);
    for i in (0..CHUNK).rev() {
        // SAFETY: i < CHUNK, so the pointer stays inside the mapping, which
        // is page aligned and so aligned for PacketBuf.
        let p = unsafe { base.add(i) };
        into.push(NonNull::new(p).expect("mmap returned null"));
    }
}

/// Packets and bytes freed (forwarded or dropped) by this thread so far.
pub fn freed() -> (u64, u64) {
    // SAFETY: thread-local, read outside any other access to the cell.
    FREE.try_with(|f| unsafe { *f.freed.get() })
        .unwrap_or((0, 0))
}

/// Number of packet buffers mapped so far in this process.
pub fn buffers_mapped() -> u64 {
    MAPPED.load(Ordering::Relaxed)
}

#[inline]
fn take_buf() -> NonNull<PacketBuf> {
    let fast = FREE.try_with(|f| {
        // SAFETY: the free list is thread-local and no reference to it
        // escapes this closure, so this is the only access.
        let bufs = unsafe { &mut *f.bufs.get() };
        if let Some(p) = bufs.pop() {
            return p;
        }
        match depot_take() {
            Some(batch) => *bufs = batch,
            None => map_chunk(bufs),
        }
        bufs.pop().expect("refilled free list is empty")
    });
    match fast {
        Ok(p) => p,
        // Thread-local storage already torn down (a packet allocated from a
        // TLS destructor): serve from a private chunk, whose spare buffers
        // go to the depot.
        Err(_) => {
            let mut v = depot_take().unwrap_or_default();
            if v.is_empty() {
                map_chunk(&mut v);
            }
            let p = v.pop().expect("refilled free list is empty");
            depot_put(v);
            p
        }
    }
}

#[inline]
fn give_buf(p: NonNull<PacketBuf>, len: u32) {
    let r = FREE.try_with(|f| {
        // SAFETY: as in take_buf, the thread-local cells are accessed only
        // inside these closures, never re-entrantly.
        let (bufs, freed) = unsafe { (&mut *f.bufs.get(), &mut *f.freed.get()) };
        freed.0 += 1;
        freed.1 += len as u64;
        bufs.push(p);
        if bufs.len() >= LOCAL_MAX {
            let keep = bufs.len() - LOCAL_MAX / 2;
            let batch = bufs.split_off(keep);
            depot_put(batch);
        }
    });
    if r.is_err() {
        depot_put(vec![p]);
    }
}

impl Packet {
    /// A new, empty packet with [`HEADROOM`] bytes of headroom.
    #[inline]
    pub fn new() -> Packet {
        let buf = take_buf();
        let mut p = Packet { buf };
        let b = p.inner_mut();
        b.head = HEADROOM as u32;
        b.len = 0;
        b.offload = VnetHdr::default();
        p
    }

    /// A new packet holding a copy of `data`.
    ///
    /// # Panics
    /// If `data` is longer than [`MAX_FRAME`].
    #[inline]
    pub fn from_slice(data: &[u8]) -> Packet {
        let mut p = Packet::new();
        p.append(data);
        p
    }

    #[inline]
    fn inner(&self) -> &PacketBuf {
        // SAFETY: the buffer is valid for the process lifetime and this
        // Packet is its only owner.
        unsafe { self.buf.as_ref() }
    }

    #[inline]
    fn inner_mut(&mut self) -> &mut PacketBuf {
        // SAFETY: as in inner(); &mut self gives exclusive access.
        unsafe { self.buf.as_mut() }
    }

    /// Bytes of data.
    #[inline]
    pub fn len(&self) -> usize {
        self.inner().len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let b = self.inner();
        &b.buf[b.head as usize..(b.head + b.len) as usize]
    }

    /// The frame, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let b = self.inner_mut();
        &mut b.buf[b.head as usize..(b.head + b.len) as usize]
    }

    /// Bytes that can still be appended.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let b = self.inner();
        BUF_SIZE - (b.head + b.len) as usize
    }

    /// Bytes that can still be prepended.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.inner().head as usize
    }

    /// The whole writable space from the start of the data to the end of
    /// the buffer, for a device to receive into before [`Packet::set_len`].
    #[inline]
    pub fn room_mut(&mut self) -> &mut [u8] {
        let b = self.inner_mut();
        &mut b.buf[b.head as usize..]
    }

    /// Set the data length (after writing through [`Packet::room_mut`]).
    ///
    /// # Panics
    /// If `len` exceeds the room after the head.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        let b = self.inner_mut();
        assert!(
            b.head as usize + len <= BUF_SIZE,
            "packet length {len} too large"
        );
        b.len = len as u32;
    }

    /// Append `data` at the end.
    ///
    /// # Panics
    /// If it does not fit.
    #[inline]
    pub fn append(&mut self, data: &[u8]) {
        let b = self.inner_mut();
        let end = (b.head + b.len) as usize;
        assert!(end + data.len() <= BUF_SIZE, "packet overflow");
        b.buf[end..end + data.len()].copy_from_slice(data);
        b.len += data.len() as u32;
    }

    /// Grow the data by `n` bytes at the front (into the headroom) and
    /// return them for the caller to fill.
    ///
    /// # Panics
    /// If the headroom is smaller than `n`.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> &mut [u8] {
        let b = self.inner_mut();
        assert!(n <= b.head as usize, "not enough headroom");
        b.head -= n as u32;
        b.len += n as u32;
        let h = b.head as usize;
        &mut b.buf[h..h + n]
    }

    /// Remove `n` bytes from the front (a header that has been consumed).
    ///
    /// # Panics
    /// If `n` exceeds the length.
    #[inline]
    pub fn shift(&mut self, n: usize) {
        let b = self.inner_mut();
        assert!(n <= b.len as usize, "shift past end");
        b.head += n as u32;
        b.len -= n as u32;
    }

    /// Cut the data to `len` bytes.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        let b = self.inner_mut();
        if len < b.len as usize {
            b.len = len as u32;
        }
    }

    /// Offload state (partial checksum, GSO) carried with the frame.
    #[inline]
    pub fn offload(&self) -> &VnetHdr {
        &self.inner().offload
    }

    #[inline]
    pub fn offload_mut(&mut self) -> &mut VnetHdr {
        &mut self.inner_mut().offload
    }

    /// A copy of this packet (data and offload state) in a new buffer.
    pub fn duplicate(&self) -> Packet {
        let mut p = Packet::from_slice(self.data());
        *p.offload_mut() = *self.offload();
        p
    }
}

impl Default for Packet {
    fn default() -> Self {
        Packet::new()
    }
}

impl Drop for Packet {
    #[inline]
    fn drop(&mut self) {
        give_buf(self.buf, self.inner().len);
    }
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packet")
            .field("len", &self.len())
            .field("offload", self.offload())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_prepend_shift() {
        let mut p = Packet::new();
        assert_eq!(p.len(), 0);
        assert_eq!(p.headroom(), HEADROOM);
        p.append(b"world");
        p.prepend(6).copy_from_slice(b"hello ");
        assert_eq!(p.data(), b"hello world");
        p.shift(6);
        assert_eq!(p.data(), b"world");
        p.truncate(3);
        assert_eq!(p.data(), b"wor");
    }

    #[test]
    fn holds_a_64k_gso_frame() {
        let mut p = Packet::new();
        let frame = vec![0xabu8; MAX_FRAME];
        p.append(&frame);
        assert_eq!(p.len(), MAX_FRAME);
        assert_eq!(p.tailroom(), 0);
    }

    #[test]
    #[should_panic]
    fn overflow_panics_instead_of_corrupting() {
        let mut p = Packet::new();
        p.append(&vec![0u8; MAX_FRAME + 1]);
    }

    #[test]
    fn fresh_packet_is_reset() {
        let mut p = Packet::from_slice(b"abc");
        p.offload_mut().gso_size = 1400;
        drop(p);
        let q = Packet::new();
        assert_eq!(q.len(), 0);
        assert_eq!(q.offload().gso_size, 0);
        assert_eq!(q.headroom(), HEADROOM);
    }

    #[test]
    fn reuse_does_not_map_more() {
        // Warm up this thread's free list.
        let warm: Vec<Packet> = (0..CHUNK).map(|_| Packet::new()).collect();
        drop(warm);
        let before = buffers_mapped();
        for _ in 0..100_000 {
            let p = Packet::from_slice(&[1, 2, 3]);
            drop(p);
        }
        // Other test threads may map concurrently, but never 100k buffers.
        assert!(buffers_mapped() - before < 100_000 / 2);
    }

    #[test]
    fn packets_cross_threads_and_return() {
        let (tx, rx) = std::sync::mpsc::channel::<Packet>();
        let h = std::thread::spawn(move || {
            let mut n = 0;
            for p in rx {
                assert_eq!(p.data()[0], 7);
                n += 1;
            }
            n
        });
        for _ in 0..10_000 {
            tx.send(Packet::from_slice(&[7; 100])).unwrap();
        }
        drop(tx);
        assert_eq!(h.join().unwrap(), 10_000);
    }

    #[test]
    fn duplicate_copies_data_and_offload() {
        let mut p = Packet::from_slice(b"xyz");
        p.offload_mut().gso_size = 9;
        let q = p.duplicate();
        p.data_mut()[0] = b'a';
        assert_eq!(q.data(), b"xyz");
        assert_eq!(q.offload().gso_size, 9);
    }
}
